"""Loading alone vs the training step it feeds.

1. In-memory tensors: ``DeviceBatches`` (uint8 resident, sliced per batch) against a
   ``DataLoader`` over a ``TensorDataset`` of the same uint8 tensors (normalised per batch
   too), images/s of one pass each, alternated.
2. Image folders: ``LoaderBatches`` over ``BatchedImages`` with the decoded cache (a
   memory-mapped uint8 array) and without it (JPEG decode on every read).
Both are set against the depth-8 CNN's training step on the same batch size, at the
engine's automatic settings for the device (on a CPU without fast bf16: fp32,
channels_last; on a recent GPU: bf16, channels_last).

    python benchmarks/loading.py [--folder ../shared/data/cifar10-test-jpeg] [--images 2048]
        [--device cpu|cuda] [--workers 2]

On CUDA the data ends on the GPU in every case (``DeviceBatches`` keeps it there; the
DataLoader pins memory and copies each batch with ``non_blocking``) and every rate is
taken after ``torch.cuda.synchronize``.

Without ``--folder`` (or when it does not exist) the script writes ``--images`` random
32x32 JPEGs to a temporary folder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cnn_lab.data.image_cache import BatchedImages, decode_all
from cnn_lab.models import build_model
from cnn_lab.training import (
    DeviceBatches,
    Normalisation,
    PerformanceOptions,
    resolve_device,
    resolve_performance,
    synchronize,
)
from cnn_lab.training.loader import LoaderBatches
from cnn_lab.training.performance import apply_process_settings


def rate(batches: Iterable, samples: int, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for _ in batches:
        pass
    synchronize(device)
    return samples / (time.perf_counter() - start)


def step_rate(batch_size: int, device: torch.device, steps: int = 5) -> tuple[float, str]:
    """Samples/s of the depth-8 CNN's training step alone (no loading), and its settings."""
    # The engine's defaults, allocator setting and cuDNN autotuning included.
    performance = apply_process_settings(
        resolve_performance(PerformanceOptions(), device, convolutional=True)
    )
    torch.manual_seed(0)
    model = build_model("cnn", in_shape=(3, 32, 32), num_classes=10, depth=8, width=64)
    model = performance.prepare_model(model.to(device))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch_size, 3, 32, 32, device=device)
    x = x.contiguous(memory_format=performance.memory_format or torch.contiguous_format)
    y = torch.randint(0, 10, (batch_size,), device=device)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for _ in range(steps + 1):
        synchronize(device)
        start = time.perf_counter()
        optimizer.zero_grad()
        with performance.autocast():
            loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    settings = f"{performance.precision}, channels_last {performance.channels_last}"
    return batch_size / statistics.median(times[1:]), settings


def tensor_loaders(n: int, batch_size: int, rounds: int, device: torch.device) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    norm = Normalisation.from_uint8(images)
    resident = DeviceBatches(
        images, labels, batch_size=batch_size, device=device, normalisation=norm, shuffle=True
    )
    dataset = TensorDataset(torch.as_tensor(images), torch.as_tensor(labels))
    pin = device.type == "cuda"
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, pin_memory=pin)

    def loader_pass() -> Iterable:
        for x, y in loader:
            x, y = x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)
            yield norm.apply(x), y

    rates: dict[str, list[float]] = {"device": [], "dataloader": []}
    for _ in range(rounds):
        rates["device"].append(rate(resident, n, device))
        rates["dataloader"].append(rate(loader_pass(), n, device))
    d, l_ = (statistics.median(v) for v in rates.values())
    per_batch = (batch_size / l_ - batch_size / d) * 1e3
    print(
        f"in-memory {n} x 3x32x32, batch {batch_size}: DeviceBatches {d:,.0f} images/s, "
        f"DataLoader {l_:,.0f} images/s ({per_batch:.2f} ms more per batch)"
    )


def jpeg_folder(root: Path, images: int) -> list[tuple[Path, int]]:
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for i in range(images):
        label = i % 10
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        files.append((path, label))
    return files


def folder_files(folder: Path | None, images: int, scratch: Path) -> list[tuple[Path, int]]:
    if folder is None or not folder.is_dir():
        return jpeg_folder(scratch / "jpegs", images)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    files = [(p, c) for c, name in enumerate(classes) for p in sorted((folder / name).iterdir())]
    rng = np.random.default_rng(0)
    pick = rng.permutation(len(files))[:images]
    return [files[i] for i in sorted(pick)]


def folder_loaders(
    files, batch_size: int, workers: int, scratch: Path, device: torch.device
) -> None:
    paths = [p for p, _ in files]
    labels = [c for _, c in files]
    start = time.perf_counter()
    cached, kept, _ = decode_all(paths, 32, cache_dir=scratch / "cache", workers=workers)
    first = time.perf_counter() - start
    plain, kept_plain, _ = decode_all(paths, 32, cache_dir=None, workers=workers)
    norm = Normalisation((0.5,) * 3, (0.25,) * 3)
    print(
        f"image folder: {len(kept)} JPEGs at 32x32, batch {batch_size}, {workers} workers; "
        f"decoding into the cache once: {len(kept) / first:,.0f} images/s"
    )
    for name, store, rows in (("cached", cached, kept), ("decode each read", plain, kept_plain)):
        dataset = BatchedImages(store, list(range(len(rows))), [labels[i] for i in rows])
        batches = LoaderBatches(
            dataset,
            batch_size=batch_size,
            device=device,
            normalisation=norm,
            shuffle=True,
            workers=workers,
        )
        rate(batches, len(rows), device)  # warm-up (starts persistent workers)
        print(f"  {name}: {rate(batches, len(rows), device):,.0f} images/s per epoch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    step, settings = step_rate(args.batch_size, device)
    print(
        f"depth-8 CNN training step alone ({device}, {settings}): {step:,.0f} samples/s "
        f"({args.threads} thread(s))"
    )
    tensor_loaders(args.samples, args.batch_size, args.rounds, device)
    with tempfile.TemporaryDirectory() as tmp:
        files = folder_files(args.folder, args.images, Path(tmp))
        folder_loaders(files, args.batch_size, args.workers, Path(tmp), device)


if __name__ == "__main__":
    main()
