"""Faithfulness of saliency maps: deletion and insertion (Petsiuk et al. 2018, RISE).

Deletion removes the most salient pixels first and follows the class probability down;
insertion starts from a blank image and reveals the most salient pixels first. A map that
points at what the model uses gives a low deletion AUC and a high insertion AUC. A removed
pixel takes the value 0 in the model's (normalised) input space, the dataset's mean colour,
for every channel; a blank image is that colour everywhere. pytorch-grad-cam's metrics
(ROAD, confidence drop) threshold at fixed percentiles and give no curve, hence this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn


@dataclass
class Faithfulness:
    deletion: np.ndarray  # per image: area under the class probability while deleting
    insertion: np.ndarray  # per image: area under the class probability while inserting


def pixel_order(maps: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """N x (H*W) pixel indices, most salient first. Ties are broken at random, so a
    constant map removes pixels in a random order rather than row by row."""
    flat = maps.flatten(1).float()
    shuffle = torch.randperm(flat.shape[1], generator=generator)
    ranks = torch.argsort(flat[:, shuffle], dim=1, descending=True, stable=True)
    return shuffle[ranks]


def _masks(order: Tensor, steps: int, shape: tuple[int, int]) -> Tensor:
    """N x (steps+1) x H x W: 1 where a pixel is among the first k/steps of ``order``."""
    pixels = order.shape[1]
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(pixels).expand_as(order))
    counts = torch.round(torch.linspace(0, pixels, steps + 1)).long()
    kept = rank[:, None, :] < counts[None, :, None]
    return kept.view(len(order), steps + 1, *shape).float()


@torch.no_grad()
def _probabilities(model: nn.Module, images: Tensor, classes: Tensor, batch: int) -> Tensor:
    """N x S probabilities of ``classes`` for N x S x C x H x W images."""
    n, s = images.shape[:2]
    flat = images.flatten(0, 1)
    repeated = classes.repeat_interleave(s)
    probs = []
    for start in range(0, len(flat), batch):
        logits = model(flat[start : start + batch]).float()
        probs.append(logits.softmax(1).gather(1, repeated[start : start + batch, None])[:, 0])
    return torch.cat(probs).view(n, s)


def area_under(curve: Tensor) -> Tensor:
    """Trapezoidal area of N curves sampled at equal steps over [0, 1]."""
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


def deletion_insertion(
    model: nn.Module,
    inputs: Tensor,
    classes: Tensor,
    maps: Tensor,
    *,
    steps: int = 10,
    batch_size: int = 256,
    seed: int = 0,
) -> Faithfulness:
    """Deletion and insertion AUC of ``maps`` (N x H x W) for the (normalised) ``inputs``
    (N x C x H x W) and their ``classes``, with ``steps`` equal shares of the pixels."""
    if maps.shape[0] != inputs.shape[0] or maps.shape[-2:] != inputs.shape[-2:]:
        raise ValueError(f"maps {tuple(maps.shape)} do not fit inputs {tuple(inputs.shape)}")
    was_training = model.training
    model.eval()
    try:
        generator = torch.Generator().manual_seed(seed)
        order = pixel_order(maps.detach().cpu(), generator)
        shown = _masks(order, steps, tuple(inputs.shape[-2:])).to(inputs.device)[:, :, None]
        x = inputs.detach()[:, None]
        classes = classes.to(inputs.device)
        deleted = _probabilities(model, x * (1 - shown), classes, batch_size)
        inserted = _probabilities(model, x * shown, classes, batch_size)
    finally:
        model.train(was_training)
    return Faithfulness(area_under(deleted).cpu().numpy(), area_under(inserted).cpu().numpy())
