"""Achieved FLOP/s of the depth-8 CNN as a fraction of a matmul ceiling measured in the
same process: float32 (NCHW and channels_last) and channels_last + bf16, with and without
the allocator setting.

The allocator setting (glibc ``mallopt``) cannot be undone inside a process, so the
parent runs one child per (setting, round), alternating ``off`` and ``on``; each child
measures the matmul ceilings and then trains the CNN with ``training.engine.fit``.
FLOPs per training sample (forward + backward) are counted with
``torch.utils.flop_counter.FlopCounterMode``, not assumed.

    python benchmarks/flops.py [--rounds 3] [--threads 1] [--samples 256]
        [--precisions fp32,fp32_cl]

``--precisions fp32,fp32_cl`` skips channels_last + bf16, which on a CPU without AVX-512 BF16 or
AMX runs emulated (10-50x slower) and measures nothing the user would choose.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnn_lab.models import build_model
from cnn_lab.training import (
    DeviceBatches,
    Normalisation,
    PerformanceOptions,
    fit,
    resolve_performance,
)
from cnn_lab.training.performance import keep_large_blocks

CPU = torch.device("cpu")
# name -> (precision, channels_last); fp32_cl is what ``auto`` picks on a CPU without fast bf16.
PRECISIONS = {"fp32": ("fp32", "off"), "fp32_cl": ("fp32", "on"), "bf16_cl": ("bf16", "on")}


def matmul_ceiling(dtype: torch.dtype, size: int = 2048, repeats: int = 8) -> float:
    """FLOP/s of a square matmul: the best this CPU does in ``dtype``."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * size**3 / best


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return build_model("cnn", in_shape=(3, 32, 32), num_classes=10, depth=8, width=64)


def flops_per_sample(batch: int = 8) -> float:
    model = cnn()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.randn(batch, 3, 32, 32)).sum().backward()
    return counter.get_total_flops() / batch


def train_rate(name: str, samples: int, epochs: int) -> float:
    precision, layout = PRECISIONS[name]
    options = PerformanceOptions(precision=precision, channels_last=layout, allocator=False)
    performance = resolve_performance(options, CPU, convolutional=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (samples, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, samples)
    batches = DeviceBatches(
        images,
        labels,
        batch_size=128,
        device=CPU,
        normalisation=Normalisation.from_uint8(images),
        shuffle=True,
        memory_format=performance.memory_format,
    )
    model = performance.prepare_model(cnn())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    fit(model, batches, optimizer=optimizer, epochs=1, performance=performance)  # warm-up
    start = time.perf_counter()
    fit(model, batches, optimizer=optimizer, epochs=epochs, performance=performance)
    return samples * epochs / (time.perf_counter() - start)


def child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    allocator = keep_large_blocks() if args.allocator == "on" else "off"
    result = {
        "allocator": allocator,
        "ceiling_fp32": matmul_ceiling(torch.float32),
        "ceiling_bf16": matmul_ceiling(torch.bfloat16),
        "flops_per_sample": flops_per_sample(),
    }
    for name in args.precisions:
        result[f"rate_{name}"] = train_rate(name, args.samples, args.epochs)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--precisions",
        type=lambda text: text.split(","),
        default=list(PRECISIONS),
        help=f"comma-separated, from {', '.join(PRECISIONS)} (default: all)",
    )
    parser.add_argument("--allocator", choices=("on", "off"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.precisions) - set(PRECISIONS)
    if unknown:
        parser.error(f"--precisions: unknown {sorted(unknown)}; allowed: {', '.join(PRECISIONS)}")
    if args.allocator:
        child(args)
        return
    results: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for setting in ("off", "on"):
            out = subprocess.run(
                [sys.executable, __file__, *sys.argv[1:], "--allocator", setting],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[setting].append(json.loads(out.strip().splitlines()[-1]))
    flops = results["off"][0]["flops_per_sample"]
    print(
        f"depth-8 CNN (64 filters, 3x32x32, batch 128, SGD): {flops / 1e6:.0f} MFLOP per "
        f"training sample (FlopCounterMode); {args.threads} thread(s), {args.rounds} rounds, "
        "medians"
    )
    for setting, rows in results.items():

        def med(key: str, rows: list[dict] = rows) -> float:
            return statistics.median(row[key] for row in rows)

        print(
            f"allocator {setting} ({rows[0]['allocator']}): ceiling fp32 "
            f"{med('ceiling_fp32') / 1e9:.0f} GFLOP/s, bf16 {med('ceiling_bf16') / 1e9:.0f} GFLOP/s"
        )
        for name in args.precisions:
            rate = med(f"rate_{name}")
            ceiling = med("ceiling_bf16" if name.startswith("bf16") else "ceiling_fp32")
            print(
                f"  {name}: {rate:.0f} samples/s = {rate * flops / 1e9:.0f} GFLOP/s = "
                f"{rate * flops / ceiling:.2f} of the {name[:4]} ceiling"
            )


if __name__ == "__main__":
    main()
