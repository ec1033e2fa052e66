"""Deletion and insertion AUC on a hand-made case whose curves are known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnn_lab.evaluation.faithfulness import deletion_insertion, pixel_order


class BrightShare(nn.Module):
    """Class 0's probability is the share of the 4 bright pixels still present."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = (x.flatten(1).sum(1) / 4.0).clamp(1e-9, 1 - 1e-9)
        return torch.stack([p.log(), (1 - p).log()], dim=1)


def _case() -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.zeros(1, 1, 4, 4)
    image[0, 0, :2, :2] = 1.0  # 4 of 16 pixels: the evidence
    perfect = image[0, 0].clone()[None]
    return image, perfect


def test_a_map_on_the_evidence_deletes_fast_and_inserts_fast() -> None:
    image, perfect = _case()
    # steps of 4 pixels: deletion 1, 0, 0, 0, 0 and insertion 0, 1, 1, 1, 1
    scores = deletion_insertion(BrightShare(), image, torch.tensor([0]), perfect, steps=4)
    assert scores.deletion[0] == pytest.approx(0.125, abs=1e-6)
    assert scores.insertion[0] == pytest.approx(0.875, abs=1e-6)


def test_a_map_away_from_the_evidence_is_the_reverse() -> None:
    image, perfect = _case()
    inverted = 1.0 - perfect
    scores = deletion_insertion(BrightShare(), image, torch.tensor([0]), inverted, steps=4)
    assert scores.deletion[0] == pytest.approx(0.875, abs=1e-6)
    assert scores.insertion[0] == pytest.approx(0.125, abs=1e-6)


def test_ties_are_broken_at_random_and_shapes_are_checked() -> None:
    order = pixel_order(torch.ones(1, 8, 8), torch.Generator().manual_seed(0))
    assert sorted(order[0].tolist()) == list(range(64))
    assert order[0].tolist() != list(range(64))  # not row by row
    with pytest.raises(ValueError, match="do not fit"):
        deletion_insertion(
            BrightShare(), torch.zeros(2, 1, 4, 4), torch.tensor([0, 0]), torch.zeros(1, 4, 4)
        )
    net = BrightShare().train()
    deletion_insertion(net, *_case()[:1], torch.tensor([0]), torch.rand(1, 4, 4), steps=2)
    assert net.training and np.isfinite(0.0)
