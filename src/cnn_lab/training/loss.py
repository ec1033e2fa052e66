"""Losses for imbalanced classes."""

from __future__ import annotations

import numpy as np
import torch


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """N / (K * n_k) per class (scikit-learn's "balanced"): every class then carries the
    same total weight in the loss. A class absent from ``labels`` is an error, since its
    weight would be infinite."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    if len(counts) > num_classes:
        raise ValueError(f"labels go up to {len(counts) - 1} but num_classes is {num_classes}")
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise ValueError(f"class(es) {empty.tolist()} have no samples; cannot weight them")
    weights = counts.sum() / (num_classes * counts)
    return torch.tensor(weights, dtype=torch.float32)
