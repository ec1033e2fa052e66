"""Decode-once image store for image-folder datasets.

JPEG decoding and resizing dominate the cost of an epoch on a GPU; doing it once and
keeping the result on disk as one uint8 N x C x H x W array (read through a memory map)
means later epochs and later runs only copy bytes. Files that cannot be decoded are
found in the same pass, listed and skipped instead of crashing a run mid-epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

logger = logging.getLogger(__name__)


def decode_image(path: str | Path, size: int) -> np.ndarray:
    """RGB uint8 C x size x size; raises on unreadable or truncated files."""
    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # JPEG: decode at 1/2..1/8 scale when big enough
        image.load()  # decodes everything now: truncated files raise here, not later
        rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def _cache_key(paths: Sequence[Path], size: int) -> str:
    """Changes when a file is added, removed, replaced or the size changes."""
    digest = hashlib.sha1(f"size={size}".encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


@dataclass
class DecodedImages:
    """Where decoded pixels live: a cached ``.npy`` file, or nowhere (decode on read)."""

    paths: list[Path]  # readable files only
    size: int
    cache_file: Path | None = None
    cache_rows: list[int] | None = None  # row of paths[i] in the cache (unreadable rows skipped)

    def read(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 len(rows) x 3 x size x size."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.cache_file is not None:
            if self.cache_rows is not None:
                rows = np.asarray(self.cache_rows, dtype=np.int64)[rows]
            return np.asarray(_open_cache(self.cache_file)[rows])
        if len(rows) == 0:
            return np.zeros((0, 3, self.size, self.size), np.uint8)
        return np.stack([decode_image(self.paths[r], self.size) for r in rows])

    def __len__(self) -> int:
        return len(self.paths)


_OPEN: dict[Path, np.ndarray] = {}


def _open_cache(path: Path) -> np.ndarray:
    """One read-only memory map per process (DataLoader workers open their own)."""
    if path not in _OPEN:
        _OPEN[path] = np.load(path, mmap_mode="r")
    return _OPEN[path]


def _try_decode(path: Path, size: int) -> np.ndarray | str:
    try:
        return decode_image(path, size)
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... all "unreadable"
        return f"{type(err).__name__}: {err}"


def decode_all(
    paths: Sequence[str | Path],
    size: int,
    *,
    cache_dir: str | Path | None,
    workers: int = 0,
) -> tuple[DecodedImages, list[int], dict[str, str]]:
    """Decode every file once. Returns the store of readable images, the positions in
    ``paths`` they came from, and ``{path: error}`` for the files that were skipped.

    With ``cache_dir`` the pixels go to ``<cache_dir>/<key>.npy`` (reused when the same
    files at the same size were decoded before); without it only readability is checked
    and images are decoded again whenever they are read.
    """
    if size < 8:
        raise ValueError(f"image size must be at least 8 pixels, got {size}")
    files = [Path(p) for p in paths]
    cache_file = meta_file = None
    if cache_dir is not None:
        key = _cache_key(files, size)
        cache_file = Path(cache_dir) / f"images_{size}px_{key}.npy"
        meta_file = cache_file.with_suffix(".json")
        if cache_file.is_file() and meta_file.is_file():
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            kept = meta["kept"]
            logger.info("decoded-image cache hit: %s (%d images)", cache_file, len(kept))
            store = DecodedImages([files[i] for i in kept], size, cache_file, kept)
            return store, kept, meta["unreadable"]

    def work(path: Path) -> np.ndarray | str:
        return _try_decode(path, size)

    unreadable: dict[str, str] = {}
    array = partial = None
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        # One partial file per process: the ranks of a torchrun launch all decode at once.
        partial = cache_file.with_suffix(f".{os.getpid()}.partial.npy")
        array = np.lib.format.open_memmap(partial, "w+", np.uint8, (len(files), 3, size, size))
    pool = ThreadPoolExecutor(workers) if workers > 0 else None  # PIL releases the GIL
    try:
        results = pool.map(work, files) if pool else map(work, files)
        for index, result in enumerate(results):  # streamed: only a few images in memory
            if isinstance(result, str):
                unreadable[str(files[index])] = result
            elif array is not None:
                array[index] = result
    finally:
        if pool:
            pool.shutdown()
    kept = [i for i in range(len(files)) if str(files[i]) not in unreadable]
    if cache_file is None or array is None or partial is None or meta_file is None:
        return DecodedImages([files[i] for i in kept], size), kept, unreadable
    array.flush()
    del array
    partial.replace(cache_file)  # a crash mid-write never leaves a half cache behind
    meta_file.write_text(json.dumps({"kept": kept, "unreadable": unreadable}), encoding="utf-8")
    _OPEN.pop(cache_file, None)
    logger.info("decoded %d images into %s", len(kept), cache_file)
    return DecodedImages([files[i] for i in kept], size, cache_file, kept), kept, unreadable


def channel_statistics(
    store: DecodedImages, rows: Sequence[int], chunk: int = 256
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (in [0, 1] units) over ``rows``, a chunk at a time so the
    training split never has to fit in memory as floats."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    if len(rows) == 0:
        raise ValueError("cannot compute channel statistics of an empty split")
    total = np.zeros(3)
    squares = np.zeros(3)
    count = 0
    for start in range(0, len(rows), chunk):
        pixels = store.read(rows[start : start + chunk]).astype(np.float64) / 255.0
        total += pixels.sum(axis=(0, 2, 3))
        squares += np.square(pixels).sum(axis=(0, 2, 3))
        count += pixels.shape[0] * pixels.shape[2] * pixels.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    std = np.where(std > 0, std, 1.0)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


class BatchedImages(Dataset):
    """A map-style dataset indexed by *lists* of positions: a BatchSampler hands it one
    batch of indices and it returns one uint8 batch, a single memory-map gather."""

    def __init__(self, store: DecodedImages, rows: Sequence[int], labels: Sequence[int]) -> None:
        if len(rows) != len(labels):
            raise ValueError(f"{len(rows)} rows but {len(labels)} labels")
        self.store = store
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, positions: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        positions = np.asarray(positions, dtype=np.int64)
        rows = self.rows[positions]
        order = np.argsort(rows, kind="stable")  # sequential reads from the memory map
        images = np.empty((len(rows), 3, self.store.size, self.store.size), np.uint8)
        images[order] = self.store.read(rows[order])
        return torch.from_numpy(images), self.labels[torch.as_tensor(positions)]
