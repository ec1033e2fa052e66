"""Batch-wise augmentation on the training device.

Transforms take a normalised float batch (N x C x H x W) and the batch source's
:class:`torch.Generator`, so a run with the same seed draws the same crops and flips on
every device. Random numbers are drawn on the generator's (CPU) device and moved once per
batch; the image work is a few vectorised tensor operations, no per-sample Python loop.
"""

from __future__ import annotations

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
