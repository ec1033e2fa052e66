"""A tiny variant trained with checkpoints, for kill-and-resume tests run as a subprocess.

Usage: python resume_script.py <checkpoint folder> <epochs> [scheduler] [early]. ``early``
adds early stopping that can only improve in epoch 1 (patience 2: it stops after epoch 3).
``KILL_AT_BATCH=<n>`` in the environment SIGKILLs the process as it is handed its n-th
training batch (counted from the start of this process): a kill in the middle of an epoch.
Prints one JSON line: the epochs this process trained and the final metrics.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np
import torch

from cnn_lab.data.sources import LabelledImages
from cnn_lab.models import build_model
from cnn_lab.training.batching import Normalisation
from cnn_lab.training.callbacks import Callback, EarlyStopping, EpochState
from cnn_lab.training.checkpoint import CheckpointStore, parameters_key
from cnn_lab.training.recipe import Recipe, SplitData, train_model


class CountEpochs(Callback):
    def __init__(self) -> None:
        self.count = 0

    def on_epoch_end(self, state: EpochState) -> None:
        self.count += 1


def tiny_data() -> SplitData:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 96)
    images = (rng.integers(0, 120, (96, 1, 6, 6)) + labels[:, None, None, None] * 40).astype(
        np.uint8
    )

    def part(lo: int, hi: int) -> LabelledImages:
        return LabelledImages(images[lo:hi], labels[lo:hi], ["a", "b", "c"])

    train = part(0, 64)
    return SplitData(train, part(64, 80), part(80, 96), Normalisation.from_uint8(train.images))


def _kill_at_batch(n: int):
    """An identity batch transform (draws no random numbers) that dies at batch ``n``."""
    if not n:
        return None
    seen = 0

    def identity(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        nonlocal seen
        seen += 1
        if seen == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return batch

    return identity


def main(folder: str, epochs: int, scheduler: str = "step", early: str = "") -> None:
    torch.set_num_threads(1)
    recipe = Recipe(epochs=epochs, batch_size=8, lr=0.01, scheduler=scheduler, step_size=2)
    data = tiny_data()
    store = CheckpointStore(folder, parameters_key(recipe, "tiny"), label="tiny")
    counter = CountEpochs()
    callbacks: list[Callback] = [counter]
    if early:
        callbacks.append(EarlyStopping("val_accuracy", patience=2, min_delta=1.0))

    def build() -> torch.nn.Module:
        # Dropout draws from the global torch RNG: a resume must restore it too.
        return torch.nn.Sequential(
            build_model("mlp", in_shape=(1, 6, 6), num_classes=3, depth=3, width=12),
            torch.nn.Dropout(0.2),
        )

    trained = train_model(
        build,
        data,
        recipe,
        label="tiny",
        augment=_kill_at_batch(int(os.environ.get("KILL_AT_BATCH", 0))),
        extra_callbacks=callbacks,
        checkpoint=store,
    )
    keys = ("train_loss", "val_loss", "val_accuracy", "lr", "grad_norm_00")
    print(
        json.dumps(
            {
                "trained_epochs": counter.count,
                "stopped_epoch": trained.history.stopped_epoch,
                "history": [{k: row.get(k) for k in keys} for row in trained.history.epochs],
                "test": trained.test,
                "weights": float(
                    sum(p.detach().double().sum() for p in trained.model.parameters())
                ),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:])
