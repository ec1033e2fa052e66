"""Precision and the other speed options: same accuracy, and the logged choice is what ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from cnn_lab.data.sources import LabelledImages
from cnn_lab.models import build_model
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
    # A CPU with fast bf16 still runs fp32 unasked: the same numbers on every CPU.
    assert resolve_performance(options, CPU, convolutional=True).precision == "fp32"
    fast = resolve_performance(options, torch.device("cuda"), convolutional=True)
    assert (fast.precision, fast.channels_last) == ("bf16", True)
    assert not resolve_performance(options, CPU, convolutional=False).channels_last
    assert not resolve_performance(options, torch.device("mps"), convolutional=True).channels_last
    kept = resolve_performance(
        options, torch.device("cuda"), convolutional=True, allow_reduced_precision=False
    )
    assert kept.precision == "fp32"
    assert fast.as_params()["perf_precision"] == "bf16"


def narrow_resnet(width: int) -> nn.Module:
    return build_model("resnet", in_shape=(1, 8, 8), num_classes=5, cifar_stem=True, width=width)


def test_auto_keeps_narrow_strided_1x1_convolutions_out_of_channels_last(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A width-4 ResNet's downsample (1x1, stride 2, 4 input channels) is a layer whose
    NHWC weight gradient corrupts the heap in oneDNN's AVX2 kernels: ``auto`` trains it in
    NCHW on every CPU, an explicit ``on`` is honoured with a warning, CUDA is unaffected."""
    narrow, wide = narrow_resnet(4), narrow_resnet(8)
    hazard = perf.channels_last_hazard(narrow)
    assert hazard == "layer2.0.downsample.0"
    assert perf.channels_last_hazard(wide) is None
    assert perf.channels_last_hazard(small_cnn()) is None
    auto = resolve_performance(PerformanceOptions(), CPU, convolutional=True, hazard=hazard)
    assert auto.channels_last is False
    forced = PerformanceOptions(channels_last="on")
    with caplog.at_level("WARNING", logger=perf.__name__):
        assert resolve_performance(forced, CPU, convolutional=True, hazard=hazard).channels_last
    assert "layer2.0.downsample.0" in caplog.text and "docs/performance.md" in caplog.text
    cuda = resolve_performance(
        PerformanceOptions(), torch.device("cuda"), convolutional=True, hazard=hazard
    )
    assert cuda.channels_last is True
    performance, model, _ = perf.set_up_model(PerformanceOptions(), narrow, CPU)
    assert performance.channels_last is False
    assert model.conv1.weight.is_contiguous()


# The case that aborted the suite on a 2-core AMD EPYC (Zen 3, AVX2 only): the transfer
# study's width-4 CIFAR-stem ResNet on 1x8x8 digits, Adam, one thread, channels_last auto.
AVX2_CASE = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    from cnn_lab.data.sources import LabelledImages
    from cnn_lab.models import build_model
    from cnn_lab.training.batching import Normalisation
    from cnn_lab.training.performance import PerformanceOptions
    from cnn_lab.training.recipe import Recipe, SplitData, train_model

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    def part(n):
        return LabelledImages(
            rng.integers(0, 256, (n, 1, 8, 8)).astype(np.uint8), rng.integers(0, 5, n),
            list("abcde"))
    train = part(256)
    data = SplitData(train, part(64), part(64), Normalisation.from_uint8(train.images))
    recipe = Recipe(epochs=3, batch_size=16, lr=1e-3, device="cpu", probe_gradients=False,
                    performance=PerformanceOptions())
    build = lambda: build_model(
        "resnet", in_shape=(1, 8, 8), num_classes=5, cifar_stem=True, width=4)
    trained = train_model(build, data, recipe, label="avx2")
    print(json.dumps({"cpu_capability": torch.backends.cpu.get_cpu_capability(),
                      "channels_last": trained.performance["perf_channels_last"],
                      "loss": trained.history.epochs[-1]["train_loss"]}))
    """
)


# glibc's malloc checks turn a heap corruption into an abort at the faulty free, so a
# regression fails on the first step rather than by chance (glibc >= 2.34).
MALLOC_DEBUG = [
    p
    for p in ("/lib/x86_64-linux-gnu/libc_malloc_debug.so.0", "/usr/lib64/libc_malloc_debug.so.0")
    if os.path.exists(p)
]


def test_narrow_resnet_trains_with_the_cpu_kernels_held_to_avx2() -> None:
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    if MALLOC_DEBUG:
        env |= {"LD_PRELOAD": MALLOC_DEBUG[0], "GLIBC_TUNABLES": "glibc.malloc.check=3"}
    done = subprocess.run(
        [sys.executable, "-c", AVX2_CASE], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["cpu_capability"] in ("AVX2", "DEFAULT")  # never AVX-512 under the cap
    assert result["channels_last"] is False
    assert np.isfinite(result["loss"])  # 48 steps of forward and backward ran through


def test_bf16_asked_on_a_cpu_that_emulates_it_is_run_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``ONEDNN_MAX_CPU_ISA`` below AVX512_CORE_BF16 makes oneDNN emulate bf16 whatever
    the CPU advertises."""
    perf.cpu_has_fast_bf16.cache_clear()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    try:
        assert perf.cpu_has_fast_bf16() is False
        with caplog.at_level("WARNING", logger=perf.__name__):
            asked = resolve_performance(
                PerformanceOptions(precision="bf16"), CPU, convolutional=True
            )
        assert asked.precision == "bf16"
        assert "emulates it" in caplog.text
    finally:
        perf.cpu_has_fast_bf16.cache_clear()


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
