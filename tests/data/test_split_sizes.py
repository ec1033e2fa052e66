"""Split ratios that would train on less data than they hold out are refused."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_lab.data.splits import stratified_split

LABELS = np.arange(1797) % 10  # the digits set's size


def test_ratios_leaving_a_small_training_split_are_refused() -> None:
    with pytest.raises(ValueError) as caught:
        stratified_split(LABELS, val_ratio=0.6, test_ratio=0.6, seed=0)
    message = str(caught.value)
    assert "val_ratio=0.6" in message and "test_ratio=0.6" in message
    assert "287 train / 431 val / 1079 test" in message


def test_val_ratio_alone_is_checked_too() -> None:
    with pytest.raises(ValueError, match="val_ratio=0.7"):
        stratified_split(LABELS, val_ratio=0.7, seed=0)


def test_usual_ratios_pass() -> None:
    split = stratified_split(LABELS, val_ratio=0.2, test_ratio=0.2, seed=0)
    assert len(split["train"]) > len(split["val"]) and len(split["train"]) > len(split["test"])
