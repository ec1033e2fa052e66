"""Achieved FLOP/s of the depth-8 CNN as a fraction of a matmul ceiling measured in the
same process: float32 (NCHW and channels_last) and channels_last + bf16, with and without
the allocator setting.

The allocator setting (glibc ``mallopt``) cannot be undone inside a process, so the
parent runs one child per (setting, round), alternating ``off`` and ``on``; each child
trains the CNN with ``training.engine.fit``, one timed epoch at a time, and measures the
matmul ceiling right before and after every epoch. Each epoch's fraction is taken against
the mean of its two neighbouring ceilings: on a shared or frequency-scaling machine the
ceiling itself moves by 20% within a minute, and a ceiling taken once at start-up made the
fraction swing as much. FLOPs per training sample (forward + backward) are counted with
``torch.utils.flop_counter.FlopCounterMode``, not assumed.

``--model project`` is the project's ``cnn`` at depth 8 (stem + 6 body convolutions +
linear head, pooling where ``downsample_at`` puts it); ``--model reference`` is the issue's
reference network: 8 convolutions with a 2x2 max-pool after every second one (the
project's ``cnn`` at depth 9 with ``downsample_at`` [1/7, 3/7, 5/7]; the fourth pool of the
reference would only shrink the map that global average pooling reads).

``--device cuda`` runs one child per round (the allocator setting is glibc's, CPU only),
times with ``torch.cuda.synchronize``, uses 8192x8192 matmuls for the ceiling and compares
fp32 against the TF32 ceiling when cuDNN runs fp32 convolutions in TF32 (PyTorch's
default, ``torch.backends.cudnn.allow_tf32``). ``--compile`` trains the compiled model
(the warm-up epoch pays the compilation). Give CUDA more samples, e.g. ``--samples 16384``.

``--profile`` (CPU only) adds one torch.profiler pass per precision: the share of the step spent in
convolution forward, convolution backward and everything else, and the fraction of the
ceiling the convolutions alone reach.

    python benchmarks/flops.py [--rounds 3] [--threads 1] [--samples 256] [--epochs 4]
        [--precisions fp32,fp32_cl] [--model project|reference] [--profile]
        [--device cpu|cuda] [--compile]

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
    resolve_device,
    resolve_performance,
    synchronize,
)
from cnn_lab.training.performance import apply_process_settings, keep_large_blocks

# name -> (precision, channels_last); fp32_cl is what ``auto`` picks on a CPU without fast bf16.
PRECISIONS = {"fp32": ("fp32", "off"), "fp32_cl": ("fp32", "on"), "bf16_cl": ("bf16", "on")}


MODELS = {
    "project": {"depth": 8},
    "reference": {"depth": 9, "downsample_at": [1 / 7, 3 / 7, 5 / 7]},
}


class MatmulCeiling:
    """FLOP/s of a square matmul in ``dtype``: what this device does at best, right now.

    ``tf32``: let fp32 matmuls use TF32 tensor cores (CUDA), as cuDNN's fp32
    convolutions do by default.
    """

    def __init__(self, dtype: torch.dtype, device: torch.device, *, tf32: bool = False) -> None:
        self.size = 8192 if device.type == "cuda" else 2048
        self.repeats = 10 if device.type == "cuda" else 4
        self.device, self.tf32 = device, tf32
        self.a = torch.randn(self.size, self.size, dtype=dtype, device=device)
        self.b = torch.randn(self.size, self.size, dtype=dtype, device=device)
        self.measure()

    def measure(self) -> float:
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = self.tf32
        try:
            synchronize(self.device)
            start = time.perf_counter()
            for _ in range(self.repeats):
                self.a @ self.b
            synchronize(self.device)
            return 2 * self.size**3 * self.repeats / (time.perf_counter() - start)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous


def cnn(model: str) -> nn.Module:
    torch.manual_seed(0)
    return build_model("cnn", in_shape=(3, 32, 32), num_classes=10, width=64, **MODELS[model])


def flops_per_sample(model_name: str, batch: int = 8) -> float:
    model = cnn(model_name)
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.randn(batch, 3, 32, 32)).sum().backward()
    return counter.get_total_flops() / batch


def train_rates(
    name: str, args: argparse.Namespace, device: torch.device, ceiling: MatmulCeiling
) -> list[tuple[float, float]]:
    """(samples/s, matmul FLOP/s around it) for each of ``args.epochs`` timed epochs."""
    precision, layout = PRECISIONS[name]
    options = PerformanceOptions(
        precision=precision,
        channels_last=layout,
        compile="on" if args.compile else "off",
        allocator=False,  # the child has set it, or not, for the whole process
    )
    performance = apply_process_settings(resolve_performance(options, device, convolutional=True))
    samples = args.samples
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (samples, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, samples)
    batches = DeviceBatches(
        images,
        labels,
        batch_size=128,
        device=device,
        normalisation=Normalisation.from_uint8(images),
        shuffle=True,
        memory_format=performance.memory_format,
    )
    model = performance.prepare_model(cnn(args.model).to(device))
    trained = performance.compiled(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    fit(trained, batches, optimizer=optimizer, epochs=1, performance=performance)  # warm-up
    pairs = []
    for _ in range(args.epochs):
        before = ceiling.measure()
        synchronize(device)
        start = time.perf_counter()
        fit(trained, batches, optimizer=optimizer, epochs=1, performance=performance)
        synchronize(device)
        rate = samples / (time.perf_counter() - start)
        pairs.append((rate, (before + ceiling.measure()) / 2))
    return pairs


def step_profile(name: str, model_name: str, flops: float) -> dict[str, float]:
    """Shares of one training step's CPU time: convolution forward, backward, the rest."""
    from torch.profiler import ProfilerActivity, profile

    precision, layout = PRECISIONS[name]
    memory_format = torch.channels_last if layout == "on" else torch.contiguous_format
    model = cnn(model_name).to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(128, 3, 32, 32).to(memory_format=memory_format)
    y = torch.randint(0, 10, (128,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    step()
    steps = 3
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    by_name = {event.key: event.self_cpu_time_total for event in prof.key_averages()}
    total = sum(by_name.values())
    forward = by_name.get("aten::mkldnn_convolution", 0.0)
    backward = by_name.get("aten::convolution_backward", 0.0)
    return {
        "conv_forward_share": forward / total,
        "conv_backward_share": backward / total,
        "other_share": 1 - (forward + backward) / total,
        # profiler times are in microseconds
        "conv_flop_rate": flops * 128 * steps / ((forward + backward) / 1e6),
    }


def child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    allocator = keep_large_blocks() if args.allocator == "on" else args.allocator
    flops = flops_per_sample(args.model)
    tf32 = device.type == "cuda" and torch.backends.cudnn.allow_tf32
    ceilings = {
        "fp32": MatmulCeiling(torch.float32, device, tf32=tf32),
        "bf16": MatmulCeiling(torch.bfloat16, device),
    }
    result: dict = {"allocator": allocator, "flops_per_sample": flops, "tf32": tf32}
    for name in args.precisions:
        ceiling = ceilings[PRECISIONS[name][0]]
        pairs = train_rates(name, args, device, ceiling)
        result[f"rate_{name}"] = statistics.median(rate for rate, _ in pairs)
        result[f"ceiling_{name}"] = statistics.median(ceil for _, ceil in pairs)
        result[f"fraction_{name}"] = statistics.median(rate * flops / ceil for rate, ceil in pairs)
        if args.profile:
            shares = step_profile(name, args.model, flops)
            shares["conv_fraction"] = shares.pop("conv_flop_rate") / ceiling.measure()
            result[f"profile_{name}"] = shares
    print(json.dumps(result))


def ceiling_name(name: str, tf32: bool) -> str:
    precision = PRECISIONS[name][0]
    return "tf32" if precision == "fp32" and tf32 else precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per child")
    parser.add_argument("--model", choices=list(MODELS), default="project")
    parser.add_argument("--profile", action="store_true", help="CPU only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="train the compiled model")
    parser.add_argument(
        "--precisions",
        type=lambda text: text.split(","),
        default=list(PRECISIONS),
        help=f"comma-separated, from {', '.join(PRECISIONS)} (default: all)",
    )
    parser.add_argument("--allocator", choices=("on", "off", "n/a"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.precisions) - set(PRECISIONS)
    if unknown:
        parser.error(f"--precisions: unknown {sorted(unknown)}; allowed: {', '.join(PRECISIONS)}")
    on_cpu = resolve_device(args.device).type == "cpu"
    if args.profile and not on_cpu:
        parser.error("--profile reads CPU operator times; it is for --device cpu")
    if args.allocator:
        child(args)
        return
    settings = ("off", "on") if on_cpu else ("n/a",)  # mallopt is glibc's: CPU memory only
    results: dict[str, list[dict]] = {setting: [] for setting in settings}
    for _ in range(args.rounds):
        for setting in settings:
            out = subprocess.run(
                [sys.executable, __file__, *sys.argv[1:], "--allocator", setting],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[setting].append(json.loads(out.strip().splitlines()[-1]))
    flops = results["off"][0]["flops_per_sample"]
    print(
        f"{args.model} CNN (64 filters, 3x32x32, batch 128, SGD): {flops / 1e6:.0f} MFLOP per "
        f"training sample (FlopCounterMode); {args.device}, {args.threads} thread(s), compile "
        f"{'on' if args.compile else 'off'}, {args.rounds} rounds "
        f"of {args.epochs} timed epochs, each against the ceiling measured around it; medians"
    )
    for setting, rows in results.items():

        def med(key: str, rows: list[dict] = rows) -> float:
            return statistics.median(row[key] for row in rows)

        print(f"allocator {setting} ({rows[0]['allocator']}):")
        for name in args.precisions:
            rate = med(f"rate_{name}")
            print(
                f"  {name}: {rate:.0f} samples/s = {rate * flops / 1e9:.0f} GFLOP/s; "
                f"{ceiling_name(name, rows[0]['tf32'])} ceiling "
                f"{med(f'ceiling_{name}') / 1e9:.0f} GFLOP/s; "
                f"fraction {med(f'fraction_{name}'):.2f} (per round: "
                + ", ".join(f"{row[f'fraction_{name}']:.2f}" for row in rows)
                + ")"
            )
            if args.profile:
                shares = {
                    key: statistics.median(row[f"profile_{name}"][key] for row in rows)
                    for key in rows[0][f"profile_{name}"]
                }
                print(
                    f"    step time: conv forward {shares['conv_forward_share']:.0%}, "
                    f"conv backward {shares['conv_backward_share']:.0%}, other "
                    f"{shares['other_share']:.0%}; the convolutions alone reach "
                    f"{shares['conv_fraction']:.2f} of the ceiling"
                )


if __name__ == "__main__":
    main()
