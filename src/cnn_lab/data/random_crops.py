"""Random resized crops and flips for a whole batch at once, on the batch's device.

Training on small crops (e.g. 64x64 out of 160x160) is how the lab fit a CNN in memory;
one ``roi_align`` call crops and resizes every sample, so there is no per-image Python work.
Plugs into :class:`cnn_lab.training.batching.DeviceBatches` as its ``augment`` hook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class RandomCrops:
    """``size`` x ``size`` crops covering a random share ``scale`` of the image area with an
    aspect ratio in ``ratio`` (None: no cropping), and horizontal flips with probability 1/2."""

    size: int | None = None
    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True

    def __call__(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        n, _, height, width = batch.shape
        if self.size is not None:
            from torchvision.ops import roi_align  # lazily: torchvision costs 2.4 s to import

            area = torch.empty(n).uniform_(*self.scale, generator=generator)
            log_ratio = torch.empty(n).uniform_(
                math.log(self.ratio[0]), math.log(self.ratio[1]), generator=generator
            )
            aspect = log_ratio.exp()
            w = (area * aspect).sqrt().mul(width).clamp(1, width)
            h = (area / aspect).sqrt().mul(height).clamp(1, height)
            x0 = torch.rand(n, generator=generator) * (width - w)
            y0 = torch.rand(n, generator=generator) * (height - h)
            boxes = torch.stack([torch.arange(n, dtype=torch.float32), x0, y0, x0 + w, y0 + h], 1)
            batch = roi_align(
                batch,
                boxes.to(batch.device, batch.dtype),
                output_size=(self.size, self.size),
                sampling_ratio=0,  # adaptive: averages when shrinking, exact at 1:1
                aligned=True,
            )
        if self.flip:
            flips = (torch.rand(n, generator=generator) < 0.5).to(batch.device)
            batch = torch.where(flips.view(-1, 1, 1, 1), batch.flip(-1), batch)
        return batch


def random_crops(
    crop_size: int | None, crop_scale: tuple[float, float], flip: bool
) -> RandomCrops | None:
    """The crops and flips a study's ``augment`` block asks for; None when it has neither."""
    if crop_size is None and not flip:
        return None
    return RandomCrops(crop_size, tuple(crop_scale), flip=flip)
