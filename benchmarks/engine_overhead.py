"""Engine overhead: the cnn-lab engine vs a minimal hand-written PyTorch loop.

Both train the same MLP (the depth study's, on digits-sized inputs) on the same
in-memory data for the same number of epochs, alternating engine and hand loop so
machine noise hits both alike. The hand loop gets the most favourable form of the data
(a pre-normalised float tensor); the engine does its usual uint8 -> normalised float
conversion per batch. Prints samples/s of each and, last, ``ratio engine/hand: X.XX``.

    python benchmarks/engine_overhead.py [--rounds 5] [--epochs 3] [--threads 1]
        [--precision bf16] [--device cpu|cuda]

``--precision bf16`` runs both under bf16 autocast (the engine through its
``performance`` argument, the hand loop with ``torch.autocast``); ``fp16`` (CUDA only)
adds a GradScaler to both. On CUDA both loops keep the data on the GPU and are timed
with ``torch.cuda.synchronize``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

from cnn_lab.models import build_model
from cnn_lab.training import (
    DeviceBatches,
    Normalisation,
    PerformanceOptions,
    build_optimizer,
    fit,
    resolve_device,
    resolve_performance,
    synchronize,
)

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device):
    dtype = AUTOCAST.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8), rng.integers(0, 10, n)


def new_model(seed: int, depth: int, width: int, device: torch.device) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model("mlp", in_shape=(1, 8, 8), num_classes=10, depth=depth, width=width)
    return model.to(device)


def run_engine(
    images, labels, norm, *, epochs, batch_size, depth, width, precision, device
) -> float:
    model = new_model(0, depth, width, device)
    batches = DeviceBatches(
        images,
        labels,
        batch_size=batch_size,
        device=device,
        normalisation=norm,
        shuffle=True,
        seed=0,
    )
    optimizer = build_optimizer("adam", model.parameters(), lr=1e-3)
    options = PerformanceOptions(precision=precision, channels_last="off", allocator=False)
    performance = resolve_performance(options, device, convolutional=False)
    synchronize(device)
    start = time.perf_counter()
    fit(model, batches, optimizer=optimizer, epochs=epochs, performance=performance)
    synchronize(device)
    return epochs * len(labels) / (time.perf_counter() - start)


def run_hand(inputs, targets, *, epochs, batch_size, depth, width, precision, device) -> float:
    model = new_model(0, depth, width, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    generator = torch.Generator().manual_seed(0)
    n = len(targets)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(device)
        for i in range(0, n, batch_size):
            index = order[i : i + batch_size]
            optimizer.zero_grad(set_to_none=True)
            with autocast(precision, device):
                loss = loss_fn(model(inputs[index]), targets[index])
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    synchronize(device)
    return epochs * n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.precision == "fp16" and device.type != "cuda":
        parser.error("--precision fp16 needs --device cuda (gradient scaling)")

    images, labels = make_data(args.samples)
    norm = Normalisation.from_uint8(images)
    inputs = norm.apply(torch.as_tensor(images).to(device))
    targets = torch.as_tensor(labels, dtype=torch.long).to(device)
    shape = dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        depth=args.depth,
        width=args.width,
        precision=args.precision,
        device=device,
    )
    run_engine(images, labels, norm, **{**shape, "epochs": 1})  # warm-up
    run_hand(inputs, targets, **{**shape, "epochs": 1})
    engine, hand = [], []
    for _ in range(args.rounds):
        engine.append(run_engine(images, labels, norm, **shape))
        hand.append(run_hand(inputs, targets, **shape))
    e, h = statistics.median(engine), statistics.median(hand)
    print(
        f"MLP depth {args.depth} width {args.width}, {args.samples} samples, batch "
        f"{args.batch_size}, {device}, {args.threads} thread(s), {args.precision}, "
        f"{args.rounds} rounds x {args.epochs} epochs"
    )
    print(f"engine: {e:,.0f} samples/s (median; rounds {', '.join(f'{x:,.0f}' for x in engine)})")
    print(f"hand:   {h:,.0f} samples/s (median; rounds {', '.join(f'{x:,.0f}' for x in hand)})")
    print(f"ratio engine/hand: {e / h:.2f}")


if __name__ == "__main__":
    main()
