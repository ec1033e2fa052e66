"""No code runs from data files: no pickle in the catalog or in src/, planted pickles are
refused where each former pickle lived, and the datasets that replace them round-trip."""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io.core import DatasetError

from cnn_lab.data.cifar_files import UnsafeCifarFile, read_cifar_batch
from cnn_lab.data.sources import DatasetBundle, LabelledImages
from cnn_lab.evaluation.cam_plots import ModelMaps
from cnn_lab.models import build_model
from cnn_lab.runtime.datasets import (
    ArraysDataset,
    BaselinesDataset,
    DatasetBundleDataset,
    JSONValueDataset,
    LinearBaseline,
    ModelDataset,
    TorchValueDataset,
)
from cnn_lab.training.batching import Normalisation
from cnn_lab.training.recipe import SplitData
from tests.conftest import PROJECT_ROOT

SRC = PROJECT_ROOT / "src"
CIFAR_READER = SRC / "cnn_lab" / "data" / "cifar_files.py"

# Every entry that was a PickleDataset, by a name its pattern resolves.
FORMER_PICKLES = [
    "cnn_depth.config",
    "cnn_depth.analysis.section",
    "artworks.resnet18.result",
    "cam.dataset",
    "cam.small_cnn.result",
    "cam.small_cnn.model",
    "cam.small_cnn.explained",
    "cnn_depth.dataset",
    "cnn_depth.mlp.mlp_d2.result",
    "cnn_depth.analysis_model",
    "init_study.dataset",
    "init_study.net_a1.xavier.result",
    "transfer.target_trainval",
    "transfer.features",
    "transfer.baselines",
    "transfer.finetune.head.result",
]


class _Payload:
    """Unpickling this writes ``marker``: what a planted file could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _malicious(marker: Path) -> bytes:
    return pickle.dumps({"config": _Payload(marker)})


# --- nothing in conf/ or src/ reads pickles ------------------------------------------


def test_no_catalog_entry_is_a_pickle() -> None:
    catalogs = sorted((PROJECT_ROOT / "conf").glob("**/catalog*.yml"))
    assert catalogs
    for path in catalogs:
        text = path.read_text()
        assert "PickleDataset" not in text, path
        assert ".pkl" not in text, path


def test_src_reads_no_pickle_but_the_restricted_cifar_reader() -> None:
    unsafe = re.compile(
        r"^\s*(import pickle|from pickle import|import (cloud)?pickle|import dill|import joblib)"
        r"|pickle\.loads?\(|allow_pickle\s*=\s*True|weights_only\s*=\s*False",
        re.MULTILINE,
    )
    found = {
        str(path.relative_to(SRC)): unsafe.findall(path.read_text())
        for path in SRC.glob("**/*.py")
        if path != CIFAR_READER
    }
    assert {path: hits for path, hits in found.items() if hits} == {}
    for path in SRC.glob("**/*.py"):  # every torch.load call restricts the unpickler
        for call in re.finditer(r"torch\.load\(([^()]|\([^()]*\))*\)", path.read_text()):
            assert "weights_only=True" in call.group(0), (path, call.group(0))


# --- planted pickles -----------------------------------------------------------------


@pytest.fixture
def catalog(kedro_project: Path) -> Any:
    from kedro.config import OmegaConfigLoader
    from kedro.io import DataCatalog

    from cnn_lab.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(conf_source="conf", env="local", **CONFIG_LOADER_ARGS)
    return DataCatalog.from_config(loader["catalog"])


def _load_path(dataset: Any) -> Path:
    """Where the catalog will read: the file, or a newer version than any run wrote."""
    path = Path(str(dataset._filepath))  # noqa: SLF001 - the path Kedro itself resolves
    if dataset._version is None:  # noqa: SLF001
        return path
    return path / "9999-12-31T23.59.59.999Z" / path.name


def test_the_planted_payload_runs_under_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    pickle.loads(_malicious(marker))  # noqa: S301 - proves the plant would run
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("name", FORMER_PICKLES)
def test_a_planted_pickle_is_refused_and_never_runs(catalog: Any, name: str) -> None:
    dataset = catalog.get(name)
    assert dataset is not None, f"{name} is not in the catalog"
    assert "Pickle" not in type(dataset).__name__
    marker = Path("marker").resolve()
    target = _load_path(dataset)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(_malicious(marker))
    old = Path(str(dataset._filepath)).with_suffix(".pkl")  # noqa: SLF001 - the former file
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(_malicious(marker))

    with pytest.raises(DatasetError) as failure:
        catalog.load(name)
    message = str(failure.value)
    assert str(target) in message or target.name in message
    assert "nothing in it was run" in message and "rerun the node" in message
    assert not marker.exists()


# --- round trips ---------------------------------------------------------------------


def _saved_and_loaded(dataset: Any, value: Any) -> Any:
    dataset.save(value)
    return dataset.load()


def test_config_keeps_nested_tuples(tmp_path: Path) -> None:
    from kedro.io import Version

    config = {
        "seed": 0,
        "lr": 0.05,
        "device": None,
        "groups": {"mlp": {"depths": (2, 4, 8), "model": {"in_shape": (1, 8, 8)}}},
        "augment": {"crop_scale": (0.08, 1.0), "pairs": [(1, "a"), (2, "b")]},
        "milestones": [],
        "flag": True,
    }
    dataset = JSONValueDataset(filepath=str(tmp_path / "config.json"), version=Version(None, None))
    loaded = _saved_and_loaded(dataset, config)
    assert loaded == config
    assert isinstance(loaded["groups"]["mlp"]["depths"], tuple)
    assert isinstance(loaded["augment"]["pairs"][0], tuple)


def test_result_keeps_nan_numpy_scalars_and_int_keys(tmp_path: Path) -> None:
    result = {
        "test_accuracy": np.float32(0.5),
        "epochs_run": np.int64(3),
        "best_val_accuracy": math.nan,
        "final_loss": math.inf,
        "history": [{"epoch": 1, "val_loss": math.nan}, {"epoch": 2, "val_loss": 0.25}],
        "gradient_norms": {0: [1.0, math.nan], 1: [2.0]},
        "normalisation": {"mean": (0.5,), "std": (0.25,)},
        "predictions": np.array([[0, 1], [2, 3]], dtype=np.int64),
    }
    loaded = _saved_and_loaded(JSONValueDataset(filepath=str(tmp_path / "result.json")), result)
    assert loaded["test_accuracy"] == 0.5 and loaded["epochs_run"] == 3
    assert math.isnan(loaded["best_val_accuracy"]) and loaded["final_loss"] == math.inf
    assert math.isnan(loaded["history"][0]["val_loss"]) and loaded["history"][1]["val_loss"] == 0.25
    assert loaded["gradient_norms"][1] == [2.0] and math.isnan(loaded["gradient_norms"][0][1])
    assert loaded["normalisation"] == {"mean": (0.5,), "std": (0.25,)}
    np.testing.assert_array_equal(loaded["predictions"], result["predictions"])
    assert loaded["predictions"].dtype == np.int64


def test_analysis_section_keeps_its_tables(tmp_path: Path) -> None:
    counts = pd.DataFrame(
        {"train": [3, 4], "val": [1, 1]}, index=pd.Index(["cat", "dog"], name="class")
    )
    stats = pd.DataFrame({"mean": [0.5, math.nan], "std": [0.1, 0.2]}, index=["R", "G"])
    section = {"tables": {"counts": counts, "stats": stats}, "figures": {"tsne": "iVBORw0KGgo="}}
    loaded = _saved_and_loaded(JSONValueDataset(filepath=str(tmp_path / "section.json")), section)
    pd.testing.assert_frame_equal(loaded["tables"]["counts"], counts)
    pd.testing.assert_frame_equal(loaded["tables"]["stats"], stats)
    assert loaded["figures"] == section["figures"]


def _images(n: int, seed: int = 0) -> LabelledImages:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8)
    return LabelledImages(images, rng.integers(0, 3, n).astype(np.int64), ["a", "b", "c"])


def _assert_same_images(left: LabelledImages, right: LabelledImages) -> None:
    np.testing.assert_array_equal(left.images, right.images)
    np.testing.assert_array_equal(left.labels, right.labels)
    assert left.images.dtype == np.uint8 and left.labels.dtype == np.int64
    assert left.class_names == right.class_names


def test_dataset_bundle_round_trips(tmp_path: Path) -> None:
    bundle = DatasetBundle("folder", _images(10), _images(4, seed=1), skipped=["x/bad.png"])
    loaded = _saved_and_loaded(DatasetBundleDataset(filepath=str(tmp_path / "dataset.pt")), bundle)
    assert isinstance(loaded, DatasetBundle)
    assert (loaded.name, loaded.skipped) == ("folder", ["x/bad.png"])
    _assert_same_images(loaded.train, bundle.train)
    _assert_same_images(loaded.test, bundle.test)


def test_split_data_round_trips(tmp_path: Path) -> None:
    split = SplitData(_images(6), _images(3, seed=2), None, Normalisation((0.5,) * 3, (0.2,) * 3))
    loaded = _saved_and_loaded(DatasetBundleDataset(filepath=str(tmp_path / "trainval.pt")), split)
    _assert_same_images(loaded.train, split.train)
    _assert_same_images(loaded.val, split.val)
    assert loaded.test is None and loaded.normalisation == split.normalisation


def test_bundle_dataset_refuses_other_values(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="DatasetBundle or SplitData"):
        DatasetBundleDataset(filepath=str(tmp_path / "d.pt")).save({"images": 1})
    assert not (tmp_path / "d.pt").exists()


def _model() -> torch.nn.Module:
    options = {"in_shape": (1, 8, 8), "num_classes": 3, "depth": 2, "width": 16}
    model = build_model("mlp", **options)
    model.build_spec = {"family": "mlp", "options": options}  # as build_model will set it
    return model


def _assert_same_state(left: torch.nn.Module, right: torch.nn.Module) -> None:
    assert type(left) is type(right)
    assert left.state_dict().keys() == right.state_dict().keys()
    for key, value in left.state_dict().items():
        assert torch.equal(value, right.state_dict()[key]), key


def test_model_round_trips(tmp_path: Path) -> None:
    model = _model().eval()
    loaded = _saved_and_loaded(ModelDataset(filepath=str(tmp_path / "model.pt")), model)
    _assert_same_state(loaded, model)
    assert not loaded.training
    assert loaded.build_spec == model.build_spec


def test_analysis_model_dict_round_trips(tmp_path: Path) -> None:
    value = {"model": _model(), "input_size": None, "label": "mlp_d2"}
    loaded = _saved_and_loaded(ModelDataset(filepath=str(tmp_path / "analysis.pt")), value)
    assert (loaded["input_size"], loaded["label"]) == (None, "mlp_d2")
    _assert_same_state(loaded["model"], value["model"])


def test_a_pretrained_model_is_rebuilt_without_fetching_its_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {"in_shape": (3, 16, 16), "num_classes": 3, "width": 8, "weights": "imagenet"}
    model = build_model("resnet", **{**options, "weights": "none"})
    model.build_spec = {"family": "resnet", "options": options}

    def no_fetch(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the saved state replaces pretrained weights: none are fetched")

    monkeypatch.setattr("cnn_lab.models.resnet.load_weights", no_fetch)
    loaded = _saved_and_loaded(ModelDataset(filepath=str(tmp_path / "model.pt")), model)
    _assert_same_state(loaded, model)
    assert loaded.build_spec == model.build_spec


def test_a_model_without_build_spec_is_refused_clearly(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    with pytest.raises(DatasetError, match="no build_spec.*cnn_lab.models.build_model"):
        ModelDataset(filepath=str(tmp_path / "model.pt")).save({"model": model})
    assert not (tmp_path / "model.pt").exists()


def test_cam_explanations_round_trip(tmp_path: Path) -> None:
    maps = ModelMaps("small", np.random.rand(2, 4, 4), np.array([1, 2]), np.array([0.5, 0.9]))
    explained = {"model": "small", "layer": "features", "scores": {"iou": 0.4}, "grid": maps}
    loaded = _saved_and_loaded(TorchValueDataset(filepath=str(tmp_path / "e.pt")), explained)
    assert loaded["scores"] == {"iou": 0.4} and loaded["grid"].name == "small"
    for part in ("maps", "classes", "probabilities"):
        np.testing.assert_array_equal(getattr(loaded["grid"], part), getattr(maps, part))


def test_features_round_trip_as_npz(tmp_path: Path) -> None:
    features = {"train_x": np.random.rand(5, 3).astype(np.float32), "train_y": np.arange(5)}
    loaded = _saved_and_loaded(ArraysDataset(filepath=str(tmp_path / "f.npz")), features)
    assert loaded.keys() == features.keys()
    for name, array in features.items():
        np.testing.assert_array_equal(loaded[name], array)
        assert loaded[name].dtype == array.dtype


@pytest.mark.parametrize(
    ("kind", "options", "classes"),
    [
        ("svm", {"svm_solver": "primal"}, 3),
        ("svm", {"svm_solver": "sgd"}, 3),
        ("logistic", {}, 3),
        ("logistic", {}, 2),
        ("svm", {"svm_solver": "primal"}, 2),
    ],
)
def test_baselines_predict_as_the_fitted_pipeline(
    tmp_path: Path, kind: str, options: dict[str, Any], classes: int
) -> None:
    from cnn_lab.evaluation.baselines import fit_baseline

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32) * rng.uniform(0.1, 10, 6).astype(np.float32)
    y = (x[:, 0] * 0.3 + x[:, 1] > 0).astype(np.int64) + (classes == 3) * (x[:, 2] > 1)
    fit = fit_baseline(kind, kind, x[:80], y[:80], max_iter=200, **options)
    loaded = _saved_and_loaded(BaselinesDataset(filepath=str(tmp_path / "b.pt")), {kind: fit})
    baseline = loaded[kind]
    assert isinstance(baseline, LinearBaseline)
    np.testing.assert_array_equal(baseline.predict(x[80:]), fit.pipeline.predict(x[80:]))
    assert baseline.accuracy(x[80:], y[80:]) == fit.accuracy(x[80:], y[80:])
    assert baseline.trainable_parameters == fit.trainable_parameters
    assert (baseline.converged, baseline.fit_seconds) == (fit.converged, fit.fit_seconds)


# --- CIFAR's python batches ----------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_of_any_protocol_are_read(tmp_path: Path, protocol: int) -> None:
    batch = {
        "batch_label": b"training batch 1 of 5",
        "data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072),
        "labels": [3, 7],
        "filenames": ["a.png", "b.png"],
    }
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    loaded = read_cifar_batch(path)
    np.testing.assert_array_equal(loaded["data"], batch["data"])
    assert loaded["labels"] == [3, 7] and loaded["filenames"] == ["a.png", "b.png"]


def test_a_planted_cifar_batch_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "data_batch_1"
    path.write_bytes(_malicious(marker))
    with pytest.raises(UnsafeCifarFile, match=r"builtins\.exec.*official"):
        read_cifar_batch(path)
    assert not marker.exists()
