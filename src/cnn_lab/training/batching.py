"""Device-resident batching for datasets that fit in memory.

The whole split lives on the training device as one uint8 tensor; each epoch draws one
permutation and slices batches from it, so there is no per-sample Python work and no
host-to-device copy per step (a DataLoader over the same tensors costs ~0.3 ms a batch).
Conversion to float, normalisation and augmentation happen batch-wise on the device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cnn_lab.training import distributed
from cnn_lab.training.performance import to_memory_format

BatchTransform = Callable[[Tensor, torch.Generator | None], Tensor]


@dataclass(frozen=True)
class Normalisation:
    """Per-channel mean and standard deviation, in units of [0, 1] pixel values."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_uint8(cls, images: np.ndarray, chunk: int = 2048) -> Normalisation:
        """Per-channel statistics of N x C x H x W uint8 images, in float64 sums over
        chunks, so a large training split is never copied whole as floats."""
        channels = images.shape[1]
        total = np.zeros(channels)
        squares = np.zeros(channels)
        for start in range(0, len(images), chunk):
            part = images[start : start + chunk].astype(np.float64)
            total += part.sum(axis=(0, 2, 3))
            squares += np.square(part).sum(axis=(0, 2, 3))
        count = images.shape[0] * images.shape[2] * images.shape[3]
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        mean, std = mean / 255.0, std / 255.0
        std = np.where(std > 0, std, 1.0)
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def apply(self, batch_uint8: Tensor) -> Tensor:
        """(x / 255 - mean) / std, folded into one multiply and one add."""
        scale, shift = self._affine(batch_uint8.device)
        return batch_uint8.float().mul_(scale).add_(shift)

    def _affine(self, device: torch.device) -> tuple[Tensor, Tensor]:
        cache = self.__dict__.setdefault("_cache", {})
        if device not in cache:
            mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
            cache[device] = ((1.0 / (255.0 * std)).to(device), (-mean / std).to(device))
        return cache[device]


def resize(batch: Tensor, size: int) -> Tensor:
    """Bilinear resize of a float batch to ``size`` x ``size``: upsampling small inputs
    (digits) or upscaling CIFAR (the lab used 128x128) batch-wise, so the stored tensor
    stays at its native size."""
    if tuple(batch.shape[-2:]) == (size, size):
        return batch
    return F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False)


class DeviceBatches:
    """Shuffled mini-batches sliced from tensors resident on ``device``.

    ``shard``: under torchrun, yield only this rank's contiguous share of every batch
    (:func:`~cnn_lab.training.distributed.shard_bounds`). Every rank draws the same order
    from the same seeded generator, so the ranks' shares of a batch are exactly the batch a
    single process would train on: ``batch_size`` is the global batch. No effect in one
    process; off by default, for callers that read every sample themselves.
    """

    def __init__(
        self,
        images: np.ndarray | Tensor,
        labels: np.ndarray | Tensor,
        *,
        batch_size: int,
        device: torch.device,
        normalisation: Normalisation,
        shuffle: bool = False,
        seed: int = 0,
        augment: BatchTransform | None = None,
        drop_last: bool = False,
        input_size: int | None = None,
        memory_format: torch.memory_format | None = None,
        shard: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.sharded = shard and distributed.is_distributed()
        if self.sharded and batch_size < distributed.world_size():
            raise ValueError(
                f"batch_size {batch_size} is smaller than the {distributed.world_size()} "
                "processes it is split over: use a batch size of at least the process count"
            )
        self.images = torch.as_tensor(images).to(device)
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(device)
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.batch_size = batch_size
        self.device = device
        self.normalisation = normalisation
        self.shuffle = shuffle
        self.augment = augment
        self.input_size = input_size
        self.memory_format = memory_format  # channels_last batches for channels_last models
        self.drop_last = drop_last
        # A CPU generator keeps the order identical on every device for the same seed.
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        full, rest = divmod(len(self.labels), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def prepare(self, batch_uint8: Tensor) -> Tensor:
        """uint8 images to normalised float inputs, resized to ``input_size`` when set,
        augmented when training."""
        batch = self.normalisation.apply(batch_uint8)
        if self.input_size is not None:
            batch = resize(batch, self.input_size)
        if self.augment is not None:
            batch = self.augment(batch, self.generator)
        return to_memory_format(batch, self.memory_format)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = self.num_samples
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.device)
        else:
            order = None
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            if self.drop_last and stop - start < self.batch_size:
                break
            if self.sharded:
                yield self._share(order, start, stop)
                continue
            if order is None:
                images, labels = self.images[start:stop], self.labels[start:stop]
            else:
                index = order[start:stop]
                images, labels = self.images[index], self.labels[index]
            yield self.prepare(images), labels

    def _share(self, order: Tensor | None, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """This rank's part of batch ``[start, stop)``. With augmentation the whole batch is
        prepared and then sliced: the generator makes the same draws as in one process and
        stays in step on every rank (it also draws the next epoch's order)."""
        if self.augment is None:
            lo, hi = distributed.shard_bounds(stop - start)
            start, stop = start + lo, start + hi
        index = slice(start, stop) if order is None else order[start:stop]
        inputs, labels = self.prepare(self.images[index]), self.labels[index]
        if self.augment is not None:
            lo, hi = distributed.shard_bounds(len(labels))
            inputs, labels = inputs[lo:hi], labels[lo:hi]
        return inputs, labels
