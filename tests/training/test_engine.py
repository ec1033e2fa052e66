from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnn_lab.data.sources import load_digits_images
from cnn_lab.data.splits import stratified_split
from cnn_lab.models import build_model
from cnn_lab.training import (
    Callback,
    DeviceBatches,
    GradientNormProbe,
    Normalisation,
    build_optimizer,
    evaluate,
    fit,
)
from cnn_lab.training.recipe import Recipe, SplitData, train_model

CPU = torch.device("cpu")


def separable_images(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 images are bright in the left half, class 0 in the right half."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 60, (n, 1, 4, 4)).astype(np.uint8)
    images[labels == 1, :, :, :2] += 180
    images[labels == 0, :, :, 2:] += 180
    return images, labels


def batches(images, labels, **kwargs) -> DeviceBatches:
    return DeviceBatches(
        images, labels, device=CPU, normalisation=Normalisation.from_uint8(images), **kwargs
    )


def test_fit_lowers_the_loss_and_learns_a_separable_problem() -> None:
    torch.manual_seed(0)
    images, labels = separable_images()
    train = batches(images, labels, batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    before = evaluate(model, train)["loss"]
    history = fit(
        model,
        train,
        optimizer=build_optimizer("sgd", model.parameters(), lr=0.1),
        epochs=5,
        val=train,
    )
    assert history.epochs[-1]["train_loss"] < before / 2
    assert history.epochs[-1]["val_accuracy"] == 1.0
    assert [row["lr"] for row in history.epochs] == [0.1] * 5


def _digits_run(seed: int) -> tuple[list[dict], dict]:
    bundle = load_digits_images()
    split = stratified_split(bundle.train.labels, val_ratio=0.2, test_ratio=0.2, seed=seed)
    data = SplitData.from_bundle(bundle, split)
    recipe = Recipe(epochs=2, batch_size=64, lr=1e-3, seed=seed, device="cpu")
    trained = train_model(
        lambda: build_model("mlp_bn", in_shape=(1, 8, 8), num_classes=10, depth=3, width=32),
        data,
        recipe,
        label="test",
    )
    rows = [
        {k: v for k, v in row.items() if not k.endswith("_time")} for row in trained.history.epochs
    ]
    return rows, trained.test


def test_same_seed_gives_identical_metrics_on_cpu() -> None:
    first, second = _digits_run(seed=3), _digits_run(seed=3)
    assert first == second
    assert _digits_run(seed=4)[0] != first[0]


def test_nan_loss_stops_training_and_is_recorded_as_divergence() -> None:
    images, labels = separable_images()
    train = batches(images, labels, batch_size=64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    seen: list[int] = []

    class Count(Callback):
        def on_epoch_end(self, state) -> None:
            seen.append(state.epoch)

    history = fit(
        model,
        train,
        optimizer=build_optimizer("adam", model.parameters(), lr=0.1),
        epochs=4,
        callbacks=[Count()],
    )
    assert history.diverged and history.diverged_epoch == 1
    assert len(history.epochs) == 1 and seen == []


def test_gradient_probe_leaves_batch_norm_statistics_and_grads_untouched() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)
    )
    images, labels = separable_images(64)
    inputs, targets = next(iter(batches(images, labels, batch_size=64)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    norms = GradientNormProbe(inputs, targets).measure(model)
    assert len(norms) == 2 and all(n > 0 for n in norms)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters())
    # The norm of a layer is that of its weight gradient on the probe batch.
    model.zero_grad()
    nn.functional.cross_entropy(model(inputs), targets).backward()
    assert norms[1] == pytest.approx(model[4].weight.grad.norm().item(), rel=1e-5)


def test_device_batches_cover_every_sample_once_per_epoch() -> None:
    images, labels = separable_images(100)
    feed = batches(images, labels, batch_size=32, shuffle=True, seed=1)
    assert len(feed) == 4
    seen = torch.cat([y for _, y in feed])
    assert len(seen) == 100 and seen.sum().item() == labels.sum()
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        batches(images, labels, batch_size=0)


def test_normalisation_statistics_match_numpy_whatever_the_chunk() -> None:
    images = np.random.default_rng(0).integers(0, 256, (1000, 3, 4, 4), dtype=np.uint8)
    scaled = images.astype(np.float64) / 255
    for chunk in (1, 333, 5000):
        norm = Normalisation.from_uint8(images, chunk=chunk)
        np.testing.assert_allclose(norm.mean, scaled.mean(axis=(0, 2, 3)), rtol=1e-12)
        np.testing.assert_allclose(norm.std, scaled.std(axis=(0, 2, 3)), rtol=1e-9)
    constant = np.full((4, 1, 2, 2), 7, dtype=np.uint8)
    assert Normalisation.from_uint8(constant).std == (1.0,)  # no division by zero
