"""Batch-wise augmentation on the training device.

Transforms take a normalised float batch (N x C x H x W) and the batch source's
:class:`torch.Generator`, so a run with the same seed draws the same crops and flips on
every device. Random numbers are drawn on the generator's (CPU) device and moved once per
batch; the image work is a few vectorised tensor operations, no per-sample Python loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from cnn_lab.training.batching import BatchTransform


def random_crop(batch: Tensor, padding: int, generator: torch.Generator | None) -> Tensor:
    """Zero-pad by ``padding`` on each side, then crop back to H x W at a random offset
    per sample. Inputs are normalised, so the zero padding is the per-channel mean."""
    if padding <= 0:
        return batch
    n, c, h, w = batch.shape
    padded = F.pad(batch, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(batch.device)
    rows = offsets[0, :, None] + torch.arange(h, device=batch.device)  # n x h
    cols = offsets[1, :, None] + torch.arange(w, device=batch.device)  # n x w
    index = rows[:, None, :, None].expand(n, c, h, w + 2 * padding)
    padded = padded.gather(2, index)
    index = cols[:, None, None, :].expand(n, c, h, w)
    return padded.gather(3, index)


def random_flip(batch: Tensor, generator: torch.Generator | None) -> Tensor:
    """Mirror each sample left-right with probability 1/2."""
    flip = torch.rand(len(batch), generator=generator).to(batch.device) < 0.5
    return torch.where(flip[:, None, None, None], batch.flip(3), batch)


def crop_and_flip(padding: int = 4, flip: bool = True) -> BatchTransform:
    """He et al.'s CIFAR augmentation: random crop with ``padding`` pixels, horizontal flip."""
    if padding < 0:
        raise ValueError(f"crop padding must be non-negative, got {padding}")

    def augment(batch: Tensor, generator: torch.Generator | None) -> Tensor:
        batch = random_crop(batch, padding, generator)
        return random_flip(batch, generator) if flip else batch

    return augment


@dataclass(frozen=True)
class BatchAugment:
    """Random 0/90/180/270-degree rotation (paintings hang any way up in this task),
    optional horizontal/vertical flips and random resized crops (scale of the area,
    aspect ratio), all per image."""

    rotate90: bool = True
    hflip: bool = False
    vflip: bool = False
    random_resized_crop: bool = False
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")

    @property
    def active(self) -> bool:
        return self.rotate90 or self.hflip or self.vflip or self.random_resized_crop

    def __call__(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        n = batch.shape[0]
        if self.random_resized_crop:
            batch = self._crop(batch, generator)
        if self.hflip:
            flip = (torch.rand(n, generator=generator) < 0.5).to(batch.device)
            batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(3), batch)
        if self.vflip:
            flip = (torch.rand(n, generator=generator) < 0.5).to(batch.device)
            batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(2), batch)
        if self.rotate90:
            batch = rotate90(batch, torch.randint(0, 4, (n,), generator=generator))
        return batch

    def _crop(self, batch: Tensor, generator: torch.Generator | None) -> Tensor:
        """Each image: a random box of ``crop_scale`` of the area and ``crop_ratio``
        aspect, resampled to the full size with one affine grid for the whole batch."""
        n = batch.shape[0]
        area = torch.empty(n).uniform_(*self.crop_scale, generator=generator)
        log_ratio = torch.empty(n).uniform_(
            math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]), generator=generator
        )
        ratio = log_ratio.exp()
        width = (area * ratio).sqrt().clamp(max=1.0)  # fractions of the side
        height = (area / ratio).sqrt().clamp(max=1.0)
        shift_x = (torch.rand(n, generator=generator) * 2 - 1) * (1 - width)
        shift_y = (torch.rand(n, generator=generator) * 2 - 1) * (1 - height)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = width, shift_x
        theta[:, 1, 1], theta[:, 1, 2] = height, shift_y
        grid = F.affine_grid(theta.to(batch.device, batch.dtype), list(batch.shape), False)
        return F.grid_sample(batch, grid, mode="bilinear", align_corners=False)


def rotate90(batch: Tensor, turns: Tensor) -> Tensor:
    """Rotate image i of an N x C x H x W batch by ``turns[i]`` x 90 degrees (H == W)."""
    if batch.shape[-1] != batch.shape[-2]:
        raise ValueError(f"rotations by 90 degrees need square images, got {tuple(batch.shape)}")
    turns = turns.to(batch.device) % 4
    out = batch.clone()
    for k in (1, 2, 3):
        chosen = turns == k
        if bool(chosen.any()):
            out[chosen] = torch.rot90(batch[chosen], k, dims=(2, 3))
    return out
