"""train_model from ready-made batches (a DataLoader-like source) and with a given loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnn_lab.data.sources import load_digits_images
from cnn_lab.data.splits import stratified_split
from cnn_lab.models import build_model
from cnn_lab.training import DeviceBatches
from cnn_lab.training.recipe import Batches, Recipe, SplitData, TrainedModel, train_model

CPU = torch.device("cpu")
RECIPE = Recipe(epochs=2, batch_size=64, lr=1e-3, seed=3, device="cpu", probe_gradients=False)


def digits() -> SplitData:
    bundle = load_digits_images()
    split = stratified_split(bundle.train.labels, val_ratio=0.2, test_ratio=0.2, seed=3)
    return SplitData.from_bundle(bundle, split)


def build() -> nn.Module:
    return build_model("mlp_bn", in_shape=(1, 8, 8), num_classes=10, depth=3, width=32)


def ready_made(data: SplitData) -> Batches:
    """The batches train_model makes of ``data``, made by the caller instead."""

    def batches(part, size: int, shuffle: bool = False) -> DeviceBatches:
        return DeviceBatches(
            part.images,
            part.labels,
            batch_size=size,
            device=CPU,
            normalisation=data.normalisation,
            shuffle=shuffle,
            seed=RECIPE.seed,
        )

    return Batches(
        batches(data.train, RECIPE.batch_size, shuffle=True),
        batches(data.val, RECIPE.eval_batch_size),
        batches(data.test, RECIPE.eval_batch_size),
        in_shape=(1, 8, 8),
    )


def numbers(trained: TrainedModel) -> tuple[list[dict], dict]:
    rows = [{k: v for k, v in r.items() if not k.endswith("_time")} for r in trained.history.epochs]
    return rows, trained.test


def test_ready_made_batches_train_exactly_as_the_in_memory_split() -> None:
    data = digits()
    in_memory = train_model(build, data, RECIPE, label="split", threads=1)
    ready = train_model(build, ready_made(data), RECIPE, label="batches", threads=1)
    assert numbers(ready) == numbers(in_memory)
    assert set(ready.test) == {"loss", "accuracy"}


def test_the_loss_is_the_training_and_scoring_criterion() -> None:
    data = digits()
    default = train_model(build, data, RECIPE, label="default")
    plain = train_model(build, data, RECIPE, label="plain", loss=nn.CrossEntropyLoss())
    assert numbers(plain) == numbers(default)
    weights = torch.linspace(0.5, 2.0, 10)
    weighted = train_model(
        build, ready_made(data), RECIPE, label="weighted", loss=nn.CrossEntropyLoss(weights)
    )
    assert numbers(weighted)[0][0]["train_loss"] != numbers(default)[0][0]["train_loss"]


def test_ready_made_batches_refuse_what_only_an_in_memory_split_can_do() -> None:
    with pytest.raises(ValueError, match="probe_gradients apply to an in-memory SplitData"):
        train_model(build, ready_made(digits()), Recipe(epochs=1, batch_size=8, lr=0.1), label="x")
