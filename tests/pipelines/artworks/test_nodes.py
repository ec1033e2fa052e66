"""The artworks nodes and schema without a Kedro session: splits, class sizes, weights,
and every bad parameter's message."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from cnn_lab.pipelines.artworks import nodes
from cnn_lab.pipelines.artworks.pipeline import STUDY
from cnn_lab.study.params import ParameterError
from cnn_lab.training.loss import balanced_class_weights
from tests.conftest import PROJECT_ROOT


def base_params() -> dict[str, Any]:
    text = (PROJECT_ROOT / "conf/base/parameters_artworks.yml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["artworks"]


def _report(counts: dict[str, int]) -> dict[str, Any]:
    return {"class_names": list(counts)}


def _images(counts: dict[str, int]) -> pd.DataFrame:
    rows = [
        {"path": f"{a}/{i}.jpg", "artist": a, "label": label}
        for label, (a, n) in enumerate(counts.items())
        for i in range(n)
    ]
    return pd.DataFrame(rows)


def test_base_parameters_are_valid_and_name_all_five_variants() -> None:
    config = STUDY.validate(base_params())
    assert config["run"] == ["scratch", "finetune", "freeze_1_3", "freeze_1_4", "modern"]
    assert config["variants"]["scratch"]["lr"] == 0.003
    assert config["variants"]["finetune"]["lr"] == 0.0003
    assert config["training"]["scheduler"] == "exponential"
    assert config["training"]["gamma"] == 0.7
    assert config["data"]["root"] == "data/01_raw/artworks"


def test_split_is_80_10_10_stratified_and_disjoint() -> None:
    config = STUDY.validate(base_params())
    counts = {"Degas": 70, "Rembrandt": 260, "Pollock": 24, "Kahlo": 120}
    images = _images(counts)
    split = nodes.split_images(images, _report(counts), config)
    parts = {p: np.asarray(split[p]) for p in ("train", "val", "test")}
    assert sum(len(v) for v in parts.values()) == len(images)
    assert len(np.unique(np.concatenate(list(parts.values())))) == len(images)
    for name, share in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        assert len(parts[name]) == pytest.approx(share * len(images), abs=2)
        per_artist = images.iloc[parts[name]]["artist"].value_counts()
        for artist, n in counts.items():
            assert per_artist[artist] == pytest.approx(share * n, abs=1.5), (name, artist)
    assert split["seed"] == 0 and split["val_ratio"] == 0.1 and split["test_ratio"] == 0.1
    again = nodes.split_images(images, _report(counts), config)
    assert again == split


def test_too_small_class_names_the_artist_and_the_count() -> None:
    config = STUDY.validate(base_params())
    with pytest.raises(ValueError) as info:
        counts = {"Degas": 40, "Pollock": 6, "Klee": 9, "Dürer": 0}  # Dürer: all unreadable
        nodes.split_images(_images(counts), _report(counts), config)
    message = str(info.value)
    assert "min_images_per_class = 10" in message
    assert "'Dürer' has 0, 'Pollock' has 6, 'Klee' has 9" in message
    assert "exclude_artists" in message


def test_split_impossible_for_sklearn_is_explained() -> None:
    params = base_params()
    params["data"] |= {"min_images_per_class": 3, "val_ratio": 0.05, "test_ratio": 0.05}
    config = STUDY.validate(params)
    with pytest.raises(ValueError, match="cannot split 15 images of 5 artists"):
        counts = {f"a{i}": 3 for i in range(5)}
        nodes.split_images(_images(counts), _report(counts), config)


def test_class_weights_are_n_over_k_times_n_k() -> None:
    weights = balanced_class_weights(np.array([0] * 6 + [1] * 3 + [2]), 3)
    torch.testing.assert_close(weights, torch.tensor([10 / 18, 10 / 9, 10 / 3]))
    assert (weights * torch.tensor([6.0, 3.0, 1.0])).tolist() == pytest.approx([10 / 3] * 3)
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have no samples"):
        balanced_class_weights(np.array([0, 2]), 3)
    with pytest.raises(ValueError, match="labels go up to 3 but num_classes is 2"):
        balanced_class_weights(np.array([0, 3]), 2)


def test_grid_is_every_run_variant_once_per_seed() -> None:
    params = base_params()
    assert [v.label for v in STUDY.variants({**params, "run": "scratch modern"})] == [
        "scratch",
        "modern",
    ]
    grid = STUDY.variants({**params, "run": ["scratch"], "seeds": [1, 2]})
    assert [(v.namespace, v.seed) for v in grid] == [
        ("artworks.scratch_s1", 1),
        ("artworks.scratch_s2", 2),
    ]
    assert STUDY.variants({**params, "run": "scratch vit"}) == []  # invalid: validation says why


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda p: p.update(run=["scratch", "vit"]),
            "unknown variant(s) ['vit']; allowed: scratch, finetune, freeze_1_3",
        ),
        (lambda p: p["variants"].pop("modern"), "['modern'] are in run but have no entry"),
        (lambda p: p.update(run=["scratch", "scratch"]), "run lists a variant twice"),
        (
            lambda p: p["variants"]["finetune"].pop("weights"),
            "variants.finetune.weights is required",
        ),
        (
            lambda p: p["variants"]["modern"].update(weights="imagenet"),
            "variants.modern trains from random initialisation",
        ),
        (lambda p: p["variants"]["scratch"].update(lr=0), "artworks.variants.scratch.lr: got 0"),
        (lambda p: p["training"].update(gamma=1.5), "artworks.training.gamma: got 1.5"),
        (lambda p: p["model"].update(arch="resnet9"), "artworks.model.arch: got 'resnet9'"),
        (lambda p: p["data"].update(image_size=8), "artworks.data.image_size: got 8"),
        (lambda p: p["data"].update(workers=-1), "artworks.data.workers: got -1"),
        (lambda p: p["data"].update(val_ratio=0.5, test_ratio=0.45), "leaves under 10%"),
        (lambda p: p["augmentation"].update(crop_scale=[0.9, 0.2]), "crop_scale must satisfy"),
        (lambda p: p["training"].update(epohcs=3), "artworks.training.epohcs: unknown key"),
        (lambda p: p.update(device="tpu"), "artworks.device: got 'tpu'"),
    ],
)
def test_bad_parameters_are_named(change, expected: str) -> None:
    params = base_params()
    change(params)
    with pytest.raises(ParameterError, match="invalid parameter") as info:
        STUDY.validate(params)
    assert expected in str(info.value)
