"""Stratified train/validation/test splits, saved as index lists so every variant and
every later run trains and scores on exactly the same samples."""

from __future__ import annotations

from typing import Any

import numpy as np


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
    # Imported here: building the pipelines (kedro viz too) imports this module, and
    # scikit-learn with SciPy was a fifth of that import time.
    from sklearn.model_selection import train_test_split

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
    _check_sizes(len(train), len(val), None if test is None else len(test), val_ratio, test_ratio)
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


def split_bundle(bundle: Any, *, val_ratio: float, seed: int, test_ratio: float) -> dict[str, Any]:
    """:func:`stratified_split` of a DatasetBundle's training images; ``test_ratio`` carves
    a test part only when the source has no official test set (``bundle.test`` None)."""
    return stratified_split(
        bundle.train.labels,
        val_ratio=val_ratio,
        seed=seed,
        test_ratio=None if bundle.test is not None else test_ratio,
    )


def _check_sizes(
    train: int, val: int, test: int | None, val_ratio: float, test_ratio: float | None
) -> None:
    """A training split smaller than a held-out one is almost surely swapped or summed
    ratios (0.6 + 0.6), not a choice: refuse it rather than train on the remainder."""
    held_out = max(val, test or 0)
    if train >= held_out:
        return
    ratios = f"val_ratio={val_ratio}" + ("" if test_ratio is None else f", test_ratio={test_ratio}")
    sizes = f"{train} train / {val} val" + ("" if test is None else f" / {test} test")
    raise ValueError(
        f"{ratios} would give {sizes} samples: the training split must be at least as "
        "large as each held-out split. Lower val_ratio"
        + ("" if test_ratio is None else " and/or test_ratio")
        + " (test_ratio is carved off first, val_ratio is a share of what remains)."
    )
