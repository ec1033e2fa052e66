"""Imagenette folders in the official layout, written here as real JPEG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_lab.data.imagenette import load_imagenette

WNIDS = ["n01440764", "n03445777"]  # tench, golf ball


def _write(folder: Path, wnid: str, count: int, size: tuple[int, int], mode: str = "RGB") -> None:
    (folder / wnid).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(wnid) + count)
    for i in range(count):
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(pixels, mode).save(folder / wnid / f"{wnid}_{i}.JPEG")


def test_official_layout_reads_train_and_val(tmp_path: Path) -> None:
    root = tmp_path / "imagenette2-160"
    _write(root / "train", WNIDS[0], 3, (40, 30))
    _write(root / "train", WNIDS[1], 2, (30, 50), mode="L")  # greyscale
    _write(root / "val", WNIDS[1], 2, (32, 32))
    # the root above the torchvision folder works too
    bundle = load_imagenette(tmp_path, image_size=24)
    assert bundle.train.class_names == ["tench", "golf ball"]
    assert bundle.train.images.shape == (5, 3, 24, 24)
    assert bundle.train.labels.tolist() == [0, 0, 0, 1, 1]
    assert bundle.test is not None and bundle.test.labels.tolist() == [1, 1]
    assert bundle.test.class_names == ["tench", "golf ball"]
    grey = bundle.train.images[3]
    assert np.array_equal(grey[0], grey[1]) and np.array_equal(grey[1], grey[2])


def test_folder_of_wnids_and_cap(tmp_path: Path) -> None:
    _write(tmp_path, WNIDS[0], 4, (20, 20))
    _write(tmp_path, WNIDS[1], 4, (20, 20))
    bundle = load_imagenette(tmp_path, image_size=16, max_per_class=2, workers=1)
    assert bundle.test is None
    assert bundle.train.labels.tolist() == [0, 0, 1, 1]


def test_missing_data_names_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cam\.data\.root.*download"):
        load_imagenette(tmp_path / "nothing", key="cam.data")
