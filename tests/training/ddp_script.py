"""Tiny training runs for the DDP tests, run under torchrun (2 CPU processes, gloo) and,
for reference, in one process.

Usage: python -m torch.distributed.run --standalone --nproc_per_node=2 ddp_script.py <out>
Each rank writes ``<out>/rank<r>.pt``: its history, weights and scores per scenario.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from cnn_lab.data.sources import LabelledImages
from cnn_lab.models import build_model
from cnn_lab.training import distributed
from cnn_lab.training.augment import crop_and_flip
from cnn_lab.training.batching import DeviceBatches, Normalisation
from cnn_lab.training.callbacks import GradientNormProbe
from cnn_lab.training.checkpoint import CheckpointStore
from cnn_lab.training.device import seed_everything
from cnn_lab.training.engine import fit
from cnn_lab.training.loader import LoaderBatches
from cnn_lab.training.recipe import Recipe, SplitData, train_model
from cnn_lab.training.scoring import evaluate, predict

# Timings differ between runs; everything else in a history row must match.
TIMINGS = ("train_time", "batch_time", "epoch_time")
CPU = torch.device("cpu")
# 69 training samples in batches of 16: the last batch (5) splits 2 + 3 over two ranks.
TRAIN, VAL, TEST = 69, 21, 18


def tiny_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of 8x8 uint8 images, told apart by their brightness."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.integers(0, 120, (n, 1, 8, 8)) + labels[:, None, None, None] * 50
    return images.astype(np.uint8), labels


def tiny_split() -> SplitData:
    parts = [
        LabelledImages(*tiny_images(n, s), ["a", "b", "c"])
        for s, n in enumerate((TRAIN, VAL, TEST))
    ]
    return SplitData(parts[0], parts[1], parts[2], Normalisation.from_uint8(parts[0].images))


def _history(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


def engine_run(family: str, augment: bool) -> dict[str, Any]:
    """``fit`` on sharded device batches: a CNN with crop/flip augmentation (the whole batch
    is prepared, then sliced) or an MLP without (each rank prepares only its share)."""
    data = tiny_split()
    seed_everything(0)
    model = build_model(family, in_shape=(1, 8, 8), num_classes=3, depth=4, width=8)

    def batches(
        part: LabelledImages, size: int, shuffle: bool = False, shard: bool = True
    ) -> DeviceBatches:
        return DeviceBatches(
            part.images,
            part.labels,
            batch_size=size,
            device=CPU,
            normalisation=data.normalisation,
            shuffle=shuffle,
            seed=0,
            augment=crop_and_flip(1, True) if augment and shuffle else None,
            shard=shard,
        )

    # The probe's fixed batch is whole on every rank (the weights are the same everywhere).
    probe = GradientNormProbe(*next(iter(batches(data.train, 32, shard=False))))
    history = fit(
        model,
        batches(data.train, 16, shuffle=True),
        optimizer=torch.optim.Adam(model.parameters(), lr=0.01),
        epochs=3,
        val=batches(data.val, 8),
        callbacks=[probe],
    )
    logits, targets = predict(model, batches(data.test, 8))
    return {
        "history": _history(history.epochs),
        "steps": history.steps,
        "weights": {k: v.clone() for k, v in model.state_dict().items()},
        "test": evaluate(model, batches(data.test, 8)),
        "logits": logits,
        "targets": targets,
    }


class UnsyncedDataParallel(DistributedDataParallel):
    """DistributedDataParallel with the gradient all-reduce left out: each rank steps on
    its own shard's gradient. The fault the equivalence tests must catch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

        # Unannotated: DDP rejects a hook whose annotations are not its own types.
        def local_only(state, bucket):
            kept: torch.futures.Future = torch.futures.Future()
            kept.set_result(bucket.buffer())
            return kept

        self.register_comm_hook(None, local_only)


@contextmanager
def without_gradient_all_reduce() -> Any:
    wrapper = distributed.DistributedDataParallel
    distributed.DistributedDataParallel = UnsyncedDataParallel
    try:
        yield
    finally:
        distributed.DistributedDataParallel = wrapper


def recipe_run(folder: Path) -> dict[str, Any]:
    """``train_model`` with checkpoints, each rank pointed at a folder of its own: only
    rank 0's may fill up. A second call finds the run finished (rank 0's checkpoint, sent
    to every rank) and trains nothing."""
    recipe = Recipe(epochs=2, batch_size=16, lr=0.01, device="cpu", probe_batch_size=32)
    store = CheckpointStore(folder / f"rank{distributed.rank()}", "key", label="tiny")

    def build() -> nn.Module:
        return build_model("mlp", in_shape=(1, 8, 8), num_classes=3, depth=3, width=8)

    first = train_model(build, tiny_split(), recipe, label="tiny", checkpoint=store)
    again = train_model(build, tiny_split(), recipe, label="tiny", checkpoint=store)
    return {
        "history": _history(first.history.epochs),
        "test": first.test,
        "again_history": _history(again.history.epochs),
    }


class RecordingImages(Dataset):
    """A dataset read one batch (list of positions) per call, as artworks' store is; it
    remembers which positions this process asked for."""

    def __init__(self, n: int, seed: int) -> None:
        self.images, self.labels = (torch.as_tensor(a) for a in tiny_images(n, seed))
        self.asked: list[list[int]] = []

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        self.asked.append(list(rows))
        return self.images[rows], self.labels[rows]


def loader_model() -> nn.Module:
    seed_everything(0)
    return build_model("mlp", in_shape=(1, 8, 8), num_classes=3, depth=3, width=8)


def loader_batches(dataset: Dataset, batch_size: int, shuffle: bool) -> LoaderBatches:
    norm = Normalisation((0.3,), (0.2,))
    return LoaderBatches(
        dataset, batch_size=batch_size, device=CPU, normalisation=norm, shuffle=shuffle
    )


def loader_run() -> dict[str, Any]:
    """``fit`` on DataLoader batches: a DistributedSampler per rank, epochs reshuffled."""
    model = loader_model()
    train, val = RecordingImages(32, 0), RecordingImages(VAL, 1)
    history = fit(
        model,
        loader_batches(train, 8, shuffle=True),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
        epochs=2,
        val=loader_batches(val, 8, shuffle=False),
    )
    epochs = [sum(train.asked[i * 4 : (i + 1) * 4], []) for i in range(2)]  # 4 batches each
    logits, targets = predict(model, loader_batches(RecordingImages(VAL, 1), 8, shuffle=False))
    return {
        "history": _history(history.epochs),
        "train_rows": epochs,
        "batch_sizes": [len(rows) for rows in train.asked],
        "weights": {k: v.clone() for k, v in model.state_dict().items()},
        "logits": logits,
        "targets": targets,
    }


def main(out: str) -> None:
    torch.set_num_threads(1)
    folder = Path(out)
    with without_gradient_all_reduce():
        unsynced = engine_run("cnn", augment=True)
    result = {
        "world_size": distributed.world_size(),
        "cnn_unsynced": unsynced,
        "cnn": engine_run("cnn", augment=True),
        "mlp": engine_run("mlp", augment=False),
        "recipe": recipe_run(folder / "checkpoints"),
        "loader": loader_run(),
    }
    torch.save(result, folder / f"rank{distributed.rank()}.pt")


if __name__ == "__main__":
    main(sys.argv[1])
