"""Pooled features of a frozen network, the input of the classic-classifier baselines."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from cnn_lab.data.sources import LabelledImages
from cnn_lab.training.batching import DeviceBatches, Normalisation
from cnn_lab.training.scoring import predict


def pooled_features(
    extractor: nn.Module,
    images: LabelledImages,
    normalisation: Normalisation,
    *,
    batch_size: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) as float32 / int64 arrays; ``extractor`` runs in eval mode on
    its own device, so BatchNorm uses its running statistics."""
    device = next(extractor.parameters()).device
    batches = DeviceBatches(
        images.images,
        images.labels,
        batch_size=batch_size,
        device=device,
        normalisation=normalisation,
    )
    with torch.inference_mode():
        features, labels = predict(extractor, batches)
    return features.numpy().astype(np.float32), labels.numpy().astype(np.int64)


def split_features(
    extractor: nn.Module,
    parts: Mapping[str, LabelledImages],
    normalisation: Normalisation,
    *,
    batch_size: int = 512,
) -> dict[str, np.ndarray]:
    """:func:`pooled_features` of each named part (``train``, ``val``...), as the arrays
    ``<part>_x`` (features) and ``<part>_y`` (labels)."""
    features: dict[str, np.ndarray] = {}
    for part, images in parts.items():
        x, y = pooled_features(extractor, images, normalisation, batch_size=batch_size)
        features[f"{part}_x"], features[f"{part}_y"] = x, y
    return features
