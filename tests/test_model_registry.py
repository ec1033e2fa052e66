"""Trained weights in MLflow: every variant run logs its network under ``model/`` (no
pickle), and each study run registers its best variant as ``cnn_lab.<study>``, which
:func:`load_registered` rebuilds into the network that scored the reported accuracy."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from cnn_lab.runtime import tracking
from cnn_lab.runtime.datasets import DatasetBundleDataset, JSONValueDataset
from cnn_lab.runtime.tracking import load_registered
from cnn_lab.training.batching import DeviceBatches, Normalisation
from cnn_lab.training.recipe import SplitData
from cnn_lab.training.scoring import evaluate
from tests.conftest import mlflow_runs
from tests.pipelines.cnn_depth.test_pipeline import TINY


def _latest(folder: Path, name: str) -> Path:
    versions = sorted((folder / name).iterdir())
    assert versions, f"no saved version of {folder / name}"
    return versions[-1] / name


def _test_accuracy(project: Path, loaded: tracking.RegisteredModel) -> float:
    """The loaded network scored on the run's own test split, prepared as its inputs.json
    says (x / 255, normalised, resized), on the CPU."""
    data_file = _latest(project / "data/02_intermediate/cnn_depth", "dataset.pt")
    split_file = _latest(project / "data/05_model_input/cnn_depth", "split.json")
    data = SplitData.from_bundle(
        DatasetBundleDataset(filepath=str(data_file)).load(),
        JSONValueDataset(filepath=str(split_file)).load(),
    )
    inputs = loaded.inputs
    assert inputs["class_names"] == list(data.test.class_names)
    assert inputs["in_shape"] == list(data.test.images.shape[1:])
    normalisation = Normalisation(
        tuple(inputs["normalisation"]["mean"]), tuple(inputs["normalisation"]["std"])
    )
    batches = DeviceBatches(
        data.test.images,
        data.test.labels,
        batch_size=512,
        device="cpu",
        normalisation=normalisation,
        input_size=inputs["input_size"],
    )
    return evaluate(loaded.model, batches)["accuracy"]


def _model_files(client: mlflow.MlflowClient, run_id: str) -> list[str]:
    return sorted(a.path for a in client.list_artifacts(run_id, tracking.MODEL_FOLDER))


def test_registered_best_variant_reproduces_its_test_accuracy(
    run_kedro, kedro_project: Path
) -> None:
    run_kedro(["cnn_depth"], TINY)
    summary = pd.read_csv(_latest(kedro_project / "data/08_reporting/cnn_depth", "summary.csv"))
    best = summary.loc[summary["test_accuracy"].idxmax()]

    loaded = load_registered("models:/cnn_lab.cnn_depth/latest")
    assert loaded.version == "1"
    assert loaded.run_id == best["mlflow_run_id"]
    assert loaded.tags["cnn_lab.variant"] == best["variant"]
    assert loaded.tags["cnn_lab.selected_by"] == "test_accuracy"
    assert loaded.tags["cnn_lab.variants_compared"] == "3"
    for metric in ("test_accuracy", "test_loss", "best_val_accuracy", "train_seconds"):
        assert float(loaded.tags[metric]) == pytest.approx(best[metric], rel=1e-12), metric
    assert not loaded.model.training
    assert _test_accuracy(kedro_project, loaded) == best["test_accuracy"]

    client, runs = mlflow_runs(kedro_project)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert loaded.tags["cnn_lab.study_run"] == parent.info.run_id
    assert parent.data.tags[tracking.REGISTERED_TAG + "cnn_depth"] == "models:/cnn_lab.cnn_depth/1"
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    files = ["model/build_spec.json", "model/inputs.json", "model/model.pt"]
    assert all(_model_files(client, r.info.run_id) == files for r in children)

    with pytest.raises(LookupError, match=r"'cnn_lab.cnn_depth' has no version '7'; versions: 1"):
        load_registered("cnn_lab.cnn_depth", 7)

    # A rerun reuses the finished variants: weights are not logged twice, except to a run
    # that lost them (here: deleted from the artifact store), which gets them again.
    worst = summary.loc[summary["test_accuracy"].idxmin(), "mlflow_run_id"]
    store = Path(client.get_run(worst).info.artifact_uri.removeprefix("file://"))
    shutil.rmtree(store / tracking.MODEL_FOLDER)
    assert _model_files(client, worst) == []
    run_kedro(["cnn_depth"], TINY)
    assert all(_model_files(client, r.info.run_id) == files for r in children)
    again = load_registered("cnn_lab.cnn_depth")
    assert (again.version, again.run_id) == ("2", loaded.run_id)
    assert _test_accuracy(kedro_project, again) == best["test_accuracy"]


def test_an_unknown_registered_model_names_what_is_registered(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).create_registered_model("other")
    with pytest.raises(
        LookupError,
        match=r"no registered model 'cnn_lab.cnn_dpeth' in the MLflow store .*; "
        r"registered: other\. A study run registers its best variant as cnn_lab\.<study>",
    ):
        load_registered("cnn_lab.cnn_dpeth", tracking_uri=uri)


def test_the_best_finite_score_with_weights_is_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NaN scores and runs without weights are passed over; of equal scores the first wins."""
    from cnn_lab.models import build_model

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # set_experiment exports it
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("toy")  # a fresh store's, not an earlier test's experiment id
    net = build_model("mlp", in_shape=(1, 4, 4), num_classes=3, depth=2, width=4)
    scores = {"diverged": math.nan, "no_weights": 0.9, "first": 0.5, "second": 0.5, "low": 0.1}
    results = []
    with mlflow.start_run() as parent:
        for name, score in scores.items():
            with mlflow.start_run(run_name=name, nested=True) as child:
                if name != "no_weights":
                    assert tracking.log_model(child.info.run_id, net, {"in_shape": [1, 4, 4]})
                    # once: a second call leaves the run as it is
                    assert not tracking.log_model(child.info.run_id, net, {})
            results.append(
                {"variant": name, "test_accuracy": score, "mlflow_run_id": child.info.run_id}
            )
        assert tracking.register_best("toy", results) == "models:/cnn_lab.toy/1"
    loaded = load_registered("cnn_lab.toy", tracking_uri=uri)
    assert loaded.tags["cnn_lab.variant"] == "first"
    assert loaded.tags["test_accuracy"] == "0.5"
    assert loaded.tags["cnn_lab.study_run"] == parent.info.run_id
    assert loaded.inputs == {"in_shape": [1, 4, 4]}
    state = {k: v.tolist() for k, v in net.state_dict().items()}
    assert {k: v.tolist() for k, v in loaded.model.state_dict().items()} == state


def test_worker_processes_log_the_weights_and_register_the_best(
    run_kedro, kedro_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--runner=ParallelRunner``: variants and the summary node run in workers, which
    log to the runs the main process opened."""
    from kedro.runner import ParallelRunner

    from tests.pipelines.test_parallel_runner import TINY as TWO_VARIANTS

    monkeypatch.setenv("KEDRO_MP_CONTEXT", "fork")
    run_kedro(["cnn_depth"], TWO_VARIANTS, runner=ParallelRunner(max_workers=2))
    summary = pd.read_csv(_latest(kedro_project / "data/08_reporting/cnn_depth", "summary.csv"))
    best = summary.loc[summary["test_accuracy"].idxmax()]
    loaded = load_registered("cnn_lab.cnn_depth")
    assert (loaded.version, loaded.run_id) == ("1", best["mlflow_run_id"])
    assert _test_accuracy(kedro_project, loaded) == best["test_accuracy"]
    client, runs = mlflow_runs(kedro_project)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2
    assert all(_model_files(client, r.info.run_id) for r in children)
