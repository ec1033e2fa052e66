from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from cnn_lab.data.sources import load_digits_images, load_torchvision_images
from cnn_lab.data.splits import stratified_split


def write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's IDX format, as torchvision leaves it after extracting the download:
    magic (0, 0, dtype 0x08 = uint8, ndim), big-endian sizes, then the data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist(root: Path, n_train: int = 20, n_test: int = 10) -> np.ndarray:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    write_idx(raw / "train-images-idx3-ubyte", train_images)
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(n_train) % 10)
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(n_test) % 10)
    return train_images


def test_mnist_loads_from_idx_files_without_download(tmp_path: Path) -> None:
    train_images = make_mnist(tmp_path)
    bundle = load_torchvision_images("mnist", tmp_path, download=False)
    assert bundle.train.images.shape == (20, 1, 28, 28)
    assert bundle.train.images.dtype == np.uint8
    np.testing.assert_array_equal(bundle.train.images[:, 0], train_images)
    assert bundle.train.labels.tolist() == [i % 10 for i in range(20)]
    assert bundle.test is not None and len(bundle.test) == 10
    assert bundle.train.class_names[0].startswith("0")


def test_missing_mnist_names_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"mnist was not found under .*data\.download: true"
    ):
        load_torchvision_images("mnist", tmp_path / "empty", download=False, key="data")


def test_digits_are_scaled_to_uint8() -> None:
    bundle = load_digits_images()
    assert bundle.train.images.shape == (1797, 1, 8, 8)
    assert bundle.train.images.max() == 255 and bundle.test is None


def test_split_is_stratified_disjoint_and_repeatable() -> None:
    labels = np.repeat(np.arange(5), 40)
    split = stratified_split(labels, val_ratio=0.25, test_ratio=0.2, seed=0)
    parts = [set(split[k]) for k in ("train", "val", "test")]
    assert sum(map(len, parts)) == 200 and len(set.union(*parts)) == 200
    assert np.bincount(labels[split["test"]]).tolist() == [8] * 5
    assert split == stratified_split(labels, val_ratio=0.25, test_ratio=0.2, seed=0)
    with pytest.raises(ValueError, match=r"val_ratio must be in \(0, 1\), got 1.0"):
        stratified_split(labels, val_ratio=1.0, seed=0)
