"""Nodes more than one study uses, written once."""

from __future__ import annotations

from typing import Any

from cnn_lab.data.sources import DatasetBundle
from cnn_lab.data.splits import stratified_split


def split_dataset(bundle: DatasetBundle, config: dict[str, Any]) -> dict[str, Any]:
    """Stratified split from a validated study config (``seed``, ``data.val_ratio`` and,
    for sources without an official test set, ``data.test_ratio``)."""
    data = config["data"]
    return stratified_split(
        bundle.train.labels,
        val_ratio=data["val_ratio"],
        seed=config["seed"],
        test_ratio=None if bundle.test is not None else data["test_ratio"],
    )
