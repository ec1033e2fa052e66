"""Seconds per training step of NetA1/NetA2 with the first layer frozen vs trained.

Interleaved repeats, best of each, so a shared machine's noise hurts both sides alike.
Usage: python benchmarks/frozen_first_layer.py [--batch 128] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from cnn_lab.models import build_model
from cnn_lab.models.tiny import SCHEMES, apply_first_layer_mode, apply_init
from cnn_lab.training.device import resolve_device, synchronize


def step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad])
    loss_fn = torch.nn.CrossEntropyLoss()

    def run(n: int) -> None:
        for _ in range(n):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()
        synchronize(x.device)

    run(5)  # warm-up
    start = time.perf_counter()
    run(steps)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    x = torch.randn(args.batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    for family in ("net_a1", "net_a2"):
        models = {}
        for scheme in ("HF", "HT"):
            torch.manual_seed(0)
            model = build_model(family, in_shape=(1, 28, 28), num_classes=10)
            models[scheme] = apply_first_layer_mode(
                apply_init(model, SCHEMES[scheme]), SCHEMES[scheme]
            )
            models[scheme].to(device)
        best = {scheme: float("inf") for scheme in models}
        for _ in range(args.repeats):
            for scheme, model in models.items():
                best[scheme] = min(best[scheme], step_seconds(model, x, y, args.steps))
        print(
            f"{family}: frozen first layer {best['HF'] * 1e3:.2f} ms/step, "
            f"trained {best['HT'] * 1e3:.2f} ms/step, ratio {best['HF'] / best['HT']:.2f} "
            f"(batch {args.batch}, {device}, {args.threads} thread(s))"
        )


if __name__ == "__main__":
    main()
