"""CIFAR-10 through torchvision from self-written official pickles; image folders."""

from __future__ import annotations

import hashlib
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_lab.data.sources import load_image_folder, load_torchvision_images

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar10(root: Path, per_batch: int = 4) -> np.ndarray:
    """The official layout: cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta,
    each a latin1 pickle of {'data': N x 3072 uint8 (R, G, B planes), 'labels': [...]}."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    first = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        first = data if first is None else first
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CLASSES, "num_vis": 3072, "num_cases_per_batch": 4}, f)
    return first


def test_cifar10_from_official_pickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.datasets import CIFAR10

    first = write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    # torchvision checks the official files' md5 sums; point it at the files written here.
    monkeypatch.setattr(
        CIFAR10, "train_list", [[n, _md5(folder / n)] for n, _ in CIFAR10.train_list]
    )
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", _md5(folder / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": _md5(folder / "batches.meta")})

    bundle = load_torchvision_images("cifar10", tmp_path, download=False)
    assert bundle.train.images.shape == (20, 3, 32, 32) and bundle.train.images.dtype == np.uint8
    assert bundle.test is not None and bundle.test.images.shape == (4, 3, 32, 32)
    assert bundle.train.class_names == CLASSES
    # channel planes land as channels: pixel (0, 0) of image 0 is data[0, [0, 1024, 2048]]
    assert list(bundle.train.images[0, :, 0, 0]) == list(first[0, [0, 1024, 2048]])


def test_cifar10_missing_names_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cifar10 was not found under .*data\.root"):
        load_torchvision_images("cifar10", tmp_path / "none", download=False)


def write_folder(root: Path, counts: dict[str, int], size: int = 10) -> None:
    rng = np.random.default_rng(0)
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (size, size + i, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


def test_image_folder_reads_classes_and_resizes(tmp_path: Path) -> None:
    write_folder(tmp_path, {"cat": 3, "ant": 2})
    Image.new("L", (5, 7), 200).save(tmp_path / "cat" / "grey.jpg")  # greyscale -> RGB
    bundle = load_image_folder(tmp_path, size=8)
    assert bundle.train.class_names == ["ant", "cat"]
    assert bundle.train.images.shape == (6, 3, 8, 8)
    assert sorted(bundle.train.labels.tolist()) == [0, 0, 1, 1, 1, 1]
    assert bundle.test is None and bundle.skipped == []


def test_empty_image_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"no images found in .* \(parameter data\.root\)"):
        load_image_folder(tmp_path, size=8)
    with pytest.raises(FileNotFoundError, match=r"image folder .*missing \(parameter x\.root\)"):
        load_image_folder(tmp_path / "missing", size=8, key="x")


def test_unreadable_image_stops_by_default(tmp_path: Path) -> None:
    write_folder(tmp_path, {"a": 2, "b": 2})
    bad = tmp_path / "b" / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"1 unreadable image\(s\)[\s\S]*broken\.jpg[\s\S]*skip"):
        load_image_folder(tmp_path, size=8)


def test_unreadable_hint_names_the_real_parameter(tmp_path: Path) -> None:
    write_folder(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"set cnn_depth\.data\.image_folder\.on_unreadable: skip"):
        load_image_folder(
            tmp_path, size=8, key="cnn_depth.data", options_key="cnn_depth.data.image_folder"
        )


def test_unreadable_image_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_folder(tmp_path, {"a": 2, "b": 2})
    bad = tmp_path / "a" / "broken.png"
    bad.write_bytes(b"\x89PNG truncated")
    with caplog.at_level(logging.WARNING):
        bundle = load_image_folder(tmp_path, size=8, on_unreadable="skip")
    assert bundle.skipped == [str(bad)]
    assert len(bundle.train) == 4
    assert f"unreadable image {bad}" in caplog.text
    assert "skipped 1 unreadable image(s)" in caplog.text


def write_grey_folder(root: Path, counts: dict[str, int], size: int = 10) -> None:
    rng = np.random.default_rng(1)
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(root / name / f"{i}.png")


def test_greyscale_folder_loads_as_one_channel(tmp_path: Path) -> None:
    write_grey_folder(tmp_path, {"3": 2, "7": 2})
    bundle = load_image_folder(tmp_path, size=8)  # channels="auto"
    assert bundle.train.images.shape == (4, 1, 8, 8)
    forced = load_image_folder(tmp_path, size=8, channels=3)
    assert forced.train.images.shape == (4, 3, 8, 8)
    # RGB of a greyscale image is the same plane three times
    assert np.array_equal(forced.train.images[:, 0], bundle.train.images[:, 0])
    assert np.array_equal(forced.train.images[:, 2], bundle.train.images[:, 0])


def test_rgb_folder_loads_as_three_channels_and_can_be_forced_to_one(tmp_path: Path) -> None:
    write_folder(tmp_path, {"a": 2, "b": 2})
    assert load_image_folder(tmp_path, size=8).train.images.shape == (4, 3, 8, 8)
    assert load_image_folder(tmp_path, size=8, channels=1).train.images.shape == (4, 1, 8, 8)
    with pytest.raises(ValueError, match="channels must be one of auto, 1, 3, got 2"):
        load_image_folder(tmp_path, size=8, channels=2)
