"""Stratified train/validation/test splits, saved as index lists so every variant and
every later run trains and scores on exactly the same samples."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_split(
    labels: np.ndarray,
    *,
    val_ratio: float,
    seed: int,
    test_ratio: float | None = None,
) -> dict[str, Any]:
    """Indices into ``labels`` for train/val and, when ``test_ratio`` is given, test.

    ``test_ratio`` is for sources without an official test set; the test part is carved
    off first, then validation from the rest, both stratified by class.
    """
    for name, ratio in (("val_ratio", val_ratio), ("test_ratio", test_ratio)):
        if ratio is not None and not 0.0 < ratio < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {ratio}")
    index = np.arange(len(labels))
    test: np.ndarray | None = None
    if test_ratio is not None:
        index, test = train_test_split(
            index, test_size=test_ratio, stratify=labels[index], random_state=seed
        )
    train, val = train_test_split(
        index, test_size=val_ratio, stratify=labels[index], random_state=seed
    )
    split: dict[str, Any] = {
        "seed": seed,
        "val_ratio": val_ratio,
        "test_ratio": test_ratio,
        "num_samples": len(labels),
        "train": sorted(int(i) for i in train),
        "val": sorted(int(i) for i in val),
        "test": "official" if test is None else sorted(int(i) for i in test),
    }
    return split
