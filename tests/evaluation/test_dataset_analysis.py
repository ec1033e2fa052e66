"""The shared dataset-analysis node on a tiny dataset whose class counts are known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from torch import nn

from cnn_lab.data.image_cache import decode_all
from cnn_lab.data.sources import DatasetBundle, LabelledImages
from cnn_lab.evaluation.dataset_analysis import channel_statistics, store_splits
from cnn_lab.study.params import ParameterError
from cnn_lab.study.reporting import analyse

OPTIONS = {"subsample": 30, "perplexity": 5, "samples_per_class": 2}


def _bundle() -> tuple[DatasetBundle, dict]:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [20, 12, 8]).astype(np.int64)
    images = rng.integers(0, 256, size=(40, 3, 6, 6), dtype=np.uint8)
    images[:, 0] = 200  # channel 0 constant: its mean and std are known
    bundle = DatasetBundle("tiny", LabelledImages(images, labels, ["a", "b", "c"]))
    split = {"train": list(range(0, 40, 2)), "val": list(range(1, 40, 4)), "test": [3, 7, 39]}
    return bundle, split


def test_counts_stats_and_figures() -> None:
    bundle, split = _bundle()
    counts, stats, class_counts, samples, tsne, section = analyse(bundle, split, OPTIONS)
    expected = {
        name: np.bincount(bundle.train.labels[idx], minlength=3).tolist()
        for name, idx in split.items()
    }
    assert counts["class"].tolist() == ["a", "b", "c"]
    for name, column in expected.items():
        assert counts[name].tolist() == column, name
    assert stats.loc[0, "mean"] == pytest.approx(200 / 255)
    assert stats.loc[0, "std"] == pytest.approx(0.0)
    assert len(stats) == 3
    assert len(tsne.axes) == 1  # raw pixels only: no model given
    assert len(samples.axes) == 3 * 2
    assert len(class_counts.axes[0].patches) == 3 * 3
    assert set(section["figures"]) == {
        "dataset analysis: class_counts",
        "dataset analysis: samples",
        "dataset analysis: tsne",
    }
    assert isinstance(section["tables"]["images per class and split"], pd.DataFrame)


def test_trained_model_adds_a_feature_panel() -> None:
    bundle, split = _bundle()
    model = nn.Sequential(nn.Flatten(), nn.Linear(108, 7), nn.ReLU(), nn.Linear(7, 3))
    *_, tsne, _ = analyse(bundle, split, OPTIONS, {"model": model, "input_size": None})
    assert [ax.get_title() for ax in tsne.axes] == [
        "raw pixels",
        "penultimate features (trained model)",
    ]


def test_bad_option_names_the_key() -> None:
    bundle, split = _bundle()
    with pytest.raises(ParameterError, match="dataset_analysis.perplexty: unknown key"):
        analyse(bundle, split, {"perplexty": 5})


def test_a_decoded_image_store_is_analysed_like_the_same_images_in_memory(
    tmp_path: Path,
) -> None:
    """artworks' images live in a decoded-image store, not a DatasetBundle: its view
    gives the same counts and statistics without loading the store whole."""
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], [10, 6, 4]).astype(np.int64)
    images = rng.integers(0, 256, size=(20, 3, 8, 8), dtype=np.uint8)
    paths = []
    for i, image in enumerate(images):  # PNG: lossless, so the store holds these pixels
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image.transpose(1, 2, 0)).save(paths[-1])
    store, kept, unreadable = decode_all(paths, 8, cache_dir=tmp_path / "cache")
    assert kept == list(range(20)) and not unreadable
    split = {"train": list(range(0, 20, 2)), "val": [1, 5, 9, 13], "test": [3, 7, 19]}
    view = store_splits("store", store, labels, split, ["a", "b", "c"])
    bundle = DatasetBundle("memory", LabelledImages(images, labels, ["a", "b", "c"]))

    from_store = analyse(view, split, OPTIONS)
    from_memory = analyse(bundle, split, OPTIONS)
    pd.testing.assert_frame_equal(from_store[0], from_memory[0])
    pd.testing.assert_frame_equal(from_store[1], from_memory[1])
    assert from_store[0]["train"].tolist() == [5, 3, 2]


def test_chunked_channel_statistics_match_numpy() -> None:
    images = np.random.default_rng(2).integers(0, 256, size=(50, 2, 4, 5), dtype=np.uint8)
    stats = channel_statistics(images.__getitem__, len(images), chunk=7)
    scaled = images / 255.0
    assert stats["mean"].to_numpy() == pytest.approx(scaled.mean(axis=(0, 2, 3)), abs=1e-12)
    assert stats["std"].to_numpy() == pytest.approx(scaled.std(axis=(0, 2, 3)), abs=1e-12)
