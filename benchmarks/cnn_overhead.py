"""Engine overhead on CNNs: ``training.engine.fit`` over ``DeviceBatches`` against a
minimal hand-written PyTorch loop, same model, same data, alternated in one process.

    python benchmarks/cnn_overhead.py [--samples 512] [--rounds 5] [--threads 1]
        [--precision bf16] [--channels-last] [--compile] [--device cuda]

``--precision``/``--channels-last``/``--compile`` apply to both loops alike (the engine
through its ``performance`` argument and ``DeviceBatches(memory_format=...)``, the hand
loop with ``torch.autocast``, ``.to(memory_format=...)`` and ``torch.compile``);
``fp16`` (CUDA only) adds a GradScaler to both. The warm-up round pays the compilation.

Prints samples/s of each (median over rounds, after one warm-up epoch each) and
``ratio engine/hand`` per model (1.00 = no overhead; higher = engine faster).
Only the ratio is meaningful on a shared CPU; absolute figures come from a GPU.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch
from torch import nn

from cnn_lab.models import build_model
from cnn_lab.training import (
    DeviceBatches,
    Normalisation,
    Performance,
    PerformanceOptions,
    fit,
    resolve_device,
    resolve_performance,
    synchronize,
)
from cnn_lab.training.performance import apply_process_settings

CASES = (
    ("cifar_resnet", 20, {}),
    ("cnn", 8, {"width": 64}),
)


def engine_epoch(
    model: nn.Module, batches: DeviceBatches, optimizer, performance: Performance
) -> float:
    synchronize(batches.device)
    start = time.perf_counter()
    fit(model, batches, optimizer=optimizer, epochs=1, performance=performance)
    synchronize(batches.device)
    return time.perf_counter() - start


def hand_epoch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer,
    batch_size: int,
    seed: int,
    dtype: torch.dtype | None,
    scaler: torch.amp.GradScaler,
) -> float:
    """What a person writes without an engine: shuffle, slice, step."""
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    synchronize(x.device)
    start = time.perf_counter()
    model.train()
    order = torch.randperm(len(x), generator=generator).to(x.device)
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else None
    fmt = fmt or torch.contiguous_format
    for i in range(0, len(x), batch_size):
        index = order[i : i + batch_size]
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(model(x[index].contiguous(memory_format=fmt)), y[index])
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    synchronize(x.device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.samples, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, args.samples)
    norm = Normalisation.from_uint8(images)
    # The hand loop gets its inputs already normalised (its best case).
    options = PerformanceOptions(
        precision=args.precision,
        channels_last="on" if args.channels_last else "off",
        compile="on" if args.compile else "off",
        allocator=False,  # benchmarks/flops.py measures the allocator setting
    )
    # cuDNN autotuning (CUDA) holds for the whole process: both loops get it alike.
    performance = apply_process_settings(resolve_performance(options, device, convolutional=True))
    fmt = performance.memory_format or torch.contiguous_format
    x = norm.apply(torch.as_tensor(images).to(device)).contiguous(memory_format=fmt)
    y = torch.as_tensor(labels, dtype=torch.long).to(device)
    print(
        f"device {device}, threads {args.threads}, {args.samples} samples 3x32x32, "
        f"batch {args.batch_size}, {performance.precision}, channels_last "
        f"{performance.channels_last}, compile {performance.compile}, "
        f"{args.rounds} alternated rounds"
    )
    for family, depth, options in CASES:
        torch.manual_seed(0)
        base = build_model(family, in_shape=(3, 32, 32), num_classes=10, depth=depth, **options)
        models = {
            name: copy.deepcopy(base).to(device, memory_format=fmt) for name in ("engine", "hand")
        }
        optims = {
            name: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
            for name, m in models.items()
        }
        trained = {
            "engine": performance.compiled(models["engine"]),
            "hand": torch.compile(models["hand"]) if performance.compile else models["hand"],
        }
        scaler = torch.amp.GradScaler(device.type, enabled=performance.precision == "fp16")
        batches = DeviceBatches(
            images,
            labels,
            batch_size=args.batch_size,
            device=device,
            normalisation=norm,
            shuffle=True,
            memory_format=performance.memory_format,
        )
        times: dict[str, list[float]] = {"engine": [], "hand": []}
        for round_ in range(args.rounds + 1):  # round 0 warms both up
            t_engine = engine_epoch(trained["engine"], batches, optims["engine"], performance)
            t_hand = hand_epoch(
                trained["hand"],
                x,
                y,
                optims["hand"],
                args.batch_size,
                round_,
                performance.autocast_dtype,
                scaler,
            )
            if round_:
                times["engine"].append(t_engine)
                times["hand"].append(t_hand)
        rate = {k: args.samples / statistics.median(v) for k, v in times.items()}
        print(
            f"{family} depth {depth}: engine {rate['engine']:.1f} samples/s, "
            f"hand {rate['hand']:.1f} samples/s, "
            f"ratio engine/hand: {rate['engine'] / rate['hand']:.2f}"
        )


if __name__ == "__main__":
    main()
