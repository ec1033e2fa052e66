"""Precision and the other speed options: same accuracy, and the logged choice is what ran."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from cnn_lab.data.sources import LabelledImages
from cnn_lab.training import performance as perf
from cnn_lab.training.batching import DeviceBatches, Normalisation
from cnn_lab.training.checkpoint import CheckpointStore, EpochCheckpoint
from cnn_lab.training.engine import fit
from cnn_lab.training.performance import (
    PerformanceOptions,
    keep_large_blocks,
    observed_autocast,
    resolve_performance,
)
from cnn_lab.training.recipe import Recipe, SplitData, train_model

CPU = torch.device("cpu")
# bf16 keeps 8 bits of mantissa: on a separable problem it must still learn it. Both
# precisions reach >= 95% and differ by at most this much on 200 held-out samples.
TOLERANCE = 0.05


def separable(n: int, seed: int) -> LabelledImages:
    """8x8 grey images: class 0 brighter on the left half, class 1 on the right, noisy."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 120, (n, 1, 8, 8))
    bright = np.zeros((n, 1, 8, 8), dtype=bool)
    bright[labels == 0, :, :, :4] = True
    bright[labels == 1, :, :, 4:] = True
    images = np.where(bright, images + 100, images).astype(np.uint8)
    return LabelledImages(images, labels.astype(np.int64), ["left", "right"])


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 2),
    )


def train(precision: str) -> tuple[dict, list]:
    train_part, val_part, test_part = separable(400, 0), separable(100, 1), separable(200, 2)
    data = SplitData(train_part, val_part, test_part, Normalisation.from_uint8(train_part.images))
    recipe = Recipe(
        epochs=4,
        batch_size=32,
        lr=1e-2,
        scheduler="none",
        device="cpu",
        probe_gradients=False,  # the probe's forward runs in fp32 by design
        performance=PerformanceOptions(precision=precision, channels_last="on"),
    )
    model = small_cnn()
    with observed_autocast(model) as seen:
        trained = train_model(lambda: model, data, recipe, label=f"test.{precision}")
    return trained, seen


def test_bf16_matches_fp32_accuracy_and_logs_what_ran() -> None:
    fp32, seen32 = train("fp32")
    bf16, seen16 = train("bf16")
    assert fp32.test["accuracy"] >= 0.95
    assert bf16.test["accuracy"] >= 0.95
    assert abs(fp32.test["accuracy"] - bf16.test["accuracy"]) <= TOLERANCE
    # The logged choice is the one the model saw inside every forward (train and eval).
    assert fp32.performance["perf_precision"] == "fp32" and set(seen32) == {None}
    assert bf16.performance["perf_precision"] == "bf16" and set(seen16) == {torch.bfloat16}
    assert bf16.performance["perf_channels_last"] is True
    weight = bf16.model[0].weight
    assert weight.dtype == torch.float32  # autocast keeps fp32 master weights
    assert weight.is_contiguous(memory_format=torch.channels_last)


def test_auto_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    options = PerformanceOptions()
    monkeypatch.setattr(perf, "bf16_is_fast", lambda device: False)
    slow = resolve_performance(options, CPU, convolutional=True)
    assert (slow.precision, slow.channels_last, slow.compile) == ("fp32", True, False)
    monkeypatch.setattr(perf, "bf16_is_fast", lambda device: True)
    fast = resolve_performance(options, CPU, convolutional=True)
    assert (fast.precision, fast.channels_last) == ("bf16", True)
    assert not resolve_performance(options, CPU, convolutional=False).channels_last
    assert not resolve_performance(options, torch.device("mps"), convolutional=True).channels_last
    kept = resolve_performance(options, CPU, convolutional=True, allow_reduced_precision=False)
    assert kept.precision == "fp32"
    assert fast.as_params()["perf_precision"] == "bf16"


def test_fp16_needs_cuda_and_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="fp16"):
        resolve_performance(PerformanceOptions(precision="fp16"), CPU, convolutional=True)
    with pytest.raises(ValueError, match="precision"):
        PerformanceOptions(precision="half")
    with pytest.raises(ValueError, match="channels_last"):
        PerformanceOptions(channels_last="yes")


def test_channels_last_batches() -> None:
    images = np.zeros((6, 3, 4, 4), dtype=np.uint8)
    batches = DeviceBatches(
        images,
        np.zeros(6),
        batch_size=4,
        device=CPU,
        normalisation=Normalisation.from_uint8(images),
        memory_format=torch.channels_last,
    )
    for inputs, _ in batches:
        assert inputs.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_allocator_setting_is_applied_on_linux() -> None:
    assert keep_large_blocks() == "on"


# --- fp16 + GradScaler. Studies allow fp16 on CUDA only; the engine path is the same on
# any device, so it is exercised here on the CPU (float16 autocast, a CPU GradScaler).
FP16 = perf.Performance(
    device=CPU,
    precision="fp16",
    channels_last=False,
    compile=False,
    cudnn_benchmark=False,
    allocator="off",
    threads=1,
)


LOSS_FACTOR = 1000.0


def _fp16_fit(epochs: int, store: CheckpointStore | None = None) -> tuple[nn.Module, list]:
    part = separable(400, 0)
    batches = DeviceBatches(
        part.images,
        part.labels,
        batch_size=32,
        device=CPU,
        normalisation=Normalisation.from_uint8(part.images),
        shuffle=True,
        seed=3,
    )
    model = small_cnn()
    checkpoint = EpochCheckpoint(store, {"batches": batches.generator}) if store else None
    cross_entropy = nn.CrossEntropyLoss()
    history = fit(
        model,
        batches,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05 / LOSS_FACTOR),
        epochs=epochs,
        # A loss this large makes the scaled fp16 gradients overflow at the initial
        # scale, so steps are skipped and the scale backs off: the state a resume needs.
        loss_fn=lambda outputs, targets: LOSS_FACTOR * cross_entropy(outputs, targets),
        performance=FP16,
        checkpoint=checkpoint,
    )
    return model, history.epochs


def test_fp16_trains_with_loss_scaling_and_resumes_with_its_scale(tmp_path) -> None:
    model, epochs = _fp16_fit(4)
    assert epochs[-1]["train_loss"] < 0.5 * epochs[0]["train_loss"]  # it learns

    store = CheckpointStore(tmp_path, "fp16", label="tiny")
    _fp16_fit(2, store)  # "killed" after epoch 2
    saved = store.load()
    assert saved is not None and saved.epoch == 2
    # The first steps overflowed at the initial scale 2**16, so the scale has backed off.
    assert saved.extra["scaler"]["scale"] < 2.0**16
    resumed, resumed_epochs = _fp16_fit(4, CheckpointStore(tmp_path, "fp16", label="tiny"))
    # Bit-identical to the uninterrupted run: same skipped steps, same weights.
    assert [e["train_loss"] for e in resumed_epochs] == [e["train_loss"] for e in epochs]
    for name, value in model.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
