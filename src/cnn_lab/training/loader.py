"""DataLoader-fed batches for datasets that do not fit on the device.

The counterpart of :class:`~cnn_lab.training.batching.DeviceBatches`: uint8 batches come
from worker processes through pinned memory, are copied to the device without blocking,
and are normalised and augmented there batch-wise, so the engine sees the same
``(inputs, targets)`` stream either way.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from cnn_lab.training.batching import BatchTransform, Normalisation
from cnn_lab.training.performance import to_memory_format


class LoaderBatches:
    """Batches from a dataset indexed by lists of positions (one call per batch)."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        device: torch.device,
        normalisation: Normalisation,
        shuffle: bool = False,
        seed: int = 0,
        augment: BatchTransform | None = None,
        workers: int = 0,
        drop_last: bool = False,
        memory_format: torch.memory_format | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.device = device
        self.normalisation = normalisation
        self.augment = augment
        self.memory_format = memory_format  # channels_last batches for channels_last models
        self.generator = torch.Generator().manual_seed(seed)  # shuffling and augmentation
        sampler = (
            RandomSampler(dataset, generator=self.generator)
            if shuffle
            else SequentialSampler(dataset)
        )
        self.loader = DataLoader(
            dataset,
            sampler=BatchSampler(sampler, batch_size, drop_last),
            batch_size=None,  # the dataset returns whole batches
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
        )

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def num_samples(self) -> int:
        return len(self.loader.dataset)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for images, labels in self.loader:
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            batch = self.normalisation.apply(images)
            if self.augment is not None:
                batch = self.augment(batch, self.generator)
            yield to_memory_format(batch, self.memory_format), labels
