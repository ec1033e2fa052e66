"""CIFAR-100 read from pickle files in the official layout, and class-subset tasks."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from cnn_lab.data.sources import LabelledImages, load_torchvision_images
from cnn_lab.data.tasks import select_classes


def _write_cifar100(root: Path, n_train: int = 12, n_test: int = 5) -> dict[str, np.ndarray]:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)  # rows: R plane, G, B
        fine = rng.integers(0, 100, n).tolist()
        batch = {
            "filenames": [f"img_{i}.png" for i in range(n)],
            "batch_label": f"{name} batch",
            "fine_labels": fine,
            "coarse_labels": [f // 5 for f in fine],
            "data": data,
        }
        with (folder / name).open("wb") as handle:
            pickle.dump(batch, handle)
        arrays[name], arrays[f"{name}_labels"] = data, np.asarray(fine)
    meta = {
        "fine_label_names": [f"fine_{i}" for i in range(100)],
        "coarse_label_names": [f"coarse_{i}" for i in range(20)],
    }
    with (folder / "meta").open("wb") as handle:
        pickle.dump(meta, handle)
    return arrays


def test_cifar100_loads_from_official_pickles_without_download(tmp_path: Path) -> None:
    arrays = _write_cifar100(tmp_path)
    bundle = load_torchvision_images("cifar100", tmp_path, download=False)
    assert bundle.train.images.shape == (12, 3, 32, 32)
    assert bundle.test is not None and bundle.test.images.shape == (5, 3, 32, 32)
    assert bundle.train.num_classes == 100 and bundle.train.class_names[7] == "fine_7"
    np.testing.assert_array_equal(bundle.train.labels, arrays["train_labels"])
    # channel planes: the green value of pixel (row 1, column 2) of image 3
    assert bundle.train.images[3, 1, 1, 2] == arrays["train"][3, 1024 + 32 + 2]


def test_missing_cifar100_without_download_names_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cifar100 was not found.*transfer\.data\.root"):
        load_torchvision_images("cifar100", tmp_path, download=False, key="transfer.data")


def test_select_classes_relabels_in_the_given_order() -> None:
    images = np.zeros((6, 1, 2, 2), np.uint8)
    images[:, 0, 0, 0] = np.arange(6)
    pool = LabelledImages(images, np.array([5, 0, 7, 5, 9, 1]), [str(d) for d in range(10)])
    subset = select_classes(pool, [5, 7, 9])
    assert subset.labels.tolist() == [0, 1, 0, 2]
    assert subset.images[:, 0, 0, 0].tolist() == [0, 2, 3, 4]
    assert subset.class_names == ["5", "7", "9"]
    with pytest.raises(ValueError, match=r"classes \[12\] do not exist"):
        select_classes(pool, [12])
