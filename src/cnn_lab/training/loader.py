"""DataLoader-fed batches for datasets that do not fit on the device.

The counterpart of :class:`~cnn_lab.training.batching.DeviceBatches`: uint8 batches come
from worker processes through pinned memory, are copied to the device without blocking,
and are normalised and augmented there batch-wise, so the engine sees the same
``(inputs, targets)`` stream either way.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from cnn_lab.training import distributed
from cnn_lab.training.batching import BatchTransform, Normalisation
from cnn_lab.training.performance import to_memory_format


class LoaderBatches:
    """Batches from a dataset indexed by lists of positions (one call per batch).

    Under torchrun (``shard``, on by default; no effect in one process) each rank reads
    its own part: shuffled training batches come from a :class:`DistributedSampler`
    (reshuffled every epoch through ``set_epoch``) in per-rank batches of
    ``batch_size / processes``, so ``batch_size`` stays the global batch; unshuffled
    batches (validation, test) are split rank by rank without the sampler's padding, so
    every sample is scored exactly once. Augmentation draws from a per-rank generator.
    """

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
        shard: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.device = device
        self.normalisation = normalisation
        self.augment = augment
        self.memory_format = memory_format  # channels_last batches for channels_last models
        self.sharded = shard and distributed.is_distributed()
        self.epoch = 0  # DistributedSampler.set_epoch: a new order every epoch
        if self.sharded:
            batches, self.sampler = _rank_batches(dataset, batch_size, shuffle, seed, drop_last)
            # Each rank augments its own samples: its own draws, not copies of rank 0's.
            self.generator = torch.Generator().manual_seed(_rank_seed(seed))
        else:
            self.generator = torch.Generator().manual_seed(seed)  # shuffling and augmentation
            sampler = (
                RandomSampler(dataset, generator=self.generator)
                if shuffle
                else SequentialSampler(dataset)
            )
            batches, self.sampler = BatchSampler(sampler, batch_size, drop_last), None
        self.loader = DataLoader(
            dataset,
            sampler=batches,
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
        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch)
            self.epoch += 1
        for images, labels in self.loader:
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            batch = self.normalisation.apply(images)
            if self.augment is not None:
                batch = self.augment(batch, self.generator)
            yield to_memory_format(batch, self.memory_format), labels


def _rank_seed(seed: int) -> int:
    """A seed of its own for every (seed, rank)."""
    return int(np.random.SeedSequence([seed, distributed.rank()]).generate_state(1)[0])


def _rank_batches(
    dataset: Dataset, batch_size: int, shuffle: bool, seed: int, drop_last: bool
) -> tuple[Sampler[list[int]], DistributedSampler | None]:
    """This rank's batches of position lists, and the sampler to ``set_epoch`` (if any)."""
    world = distributed.world_size()
    if batch_size < world:
        raise ValueError(
            f"batch_size {batch_size} is smaller than the {world} processes it is split over: "
            "use a batch size of at least the process count"
        )
    if shuffle:
        if batch_size % world:
            raise ValueError(
                f"batch_size {batch_size} does not split evenly over {world} processes: "
                f"use a multiple of {world} (the batch size is the global batch)"
            )
        sampler = DistributedSampler(
            dataset, num_replicas=world, rank=distributed.rank(), shuffle=True, seed=seed
        )
        return BatchSampler(sampler, batch_size // world, drop_last), sampler
    return _RankShares(BatchSampler(SequentialSampler(dataset), batch_size, drop_last)), None


class _RankShares(Sampler[list[int]]):
    """This rank's contiguous share of each batch of ``batches``, in order; empty shares
    (only a last batch smaller than the process count has them) are skipped."""

    def __init__(self, batches: BatchSampler) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            lo, hi = distributed.shard_bounds(len(batch))
            if hi > lo:
                yield batch[lo:hi]

    def __len__(self) -> int:
        full, rest = divmod(len(self.batches.sampler), self.batches.batch_size)  # type: ignore[arg-type]
        if rest and not self.batches.drop_last:
            lo, hi = distributed.shard_bounds(rest)
            full += hi > lo
        return full
