"""The transfer study end to end on a tiny override with 2 Optuna trials."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import mlflow_runs
from tests.pipelines.snapshot import assert_matches_snapshot

TINY = {
    "transfer.threads": 1,
    "transfer.model.width": 4,
    "transfer.source.training.epochs": 2,
    "transfer.finetune.epochs": 3,
    "transfer.finetune.presets": ["head", "all"],
    "transfer.optimizers.names": ["adam", "sgd"],
    "transfer.early_stopping.patience": 1,
    "transfer.search.n_trials": 2,
    "transfer.search.batch_sizes": [32, 64],
}


def _latest(folder: Path, name: str) -> Path:
    versions = sorted((folder / name).iterdir())
    assert versions, f"no saved version of {folder / name}"
    return versions[-1] / name


def test_pipeline_end_to_end(run_kedro, kedro_project: Path) -> None:
    run_kedro(["transfer"], TINY)
    reporting = kedro_project / "data/08_reporting/transfer"

    summary = pd.read_csv(_latest(reporting, "summary.csv"))
    assert_matches_snapshot("transfer", "summary_columns_tiny", list(summary.columns))
    assert list(summary["approach"]) == [
        "svm",
        "logistic",
        "head",
        "all",
        "adam_lr3e-03",
        "sgd_lr3e-03",
        "tuned",
    ]
    for column in ("val_accuracy", "test_accuracy", "train_seconds", "trainable_parameters"):
        assert summary[column].notna().all(), column
        assert (summary[column] >= 0).all(), column
    assert summary[["val_accuracy", "test_accuracy"]].le(1).all().all()
    finetuned = summary.set_index("approach")
    # 'head' trains the 5-way head only (16 pooled features at width 4: 16*2^3/4... = 32).
    assert finetuned.loc["head", "trainable_parameters"] == 32 * 5 + 5
    assert (
        finetuned.loc["all", "trainable_parameters"] > finetuned.loc["head", "trainable_parameters"]
    )
    assert finetuned.loc["svm", "trainable_parameters"] == 32 * 5 + 5
    assert finetuned.loc["svm", "val_accuracy"] > 0.4  # chance is 0.2

    best = json.loads(
        _latest(kedro_project / "data/07_model_output/transfer", "search_best.json").read_text()
    )
    assert finetuned.loc["tuned", "lr"] == pytest.approx(best["lr"])
    assert best["batch_size"] in (32, 64)
    trials = pd.read_csv(_latest(reporting, "search_trials.csv"))
    assert len(trials) == 2
    # The search starts from the best untuned run of its preset ("all" and the optimizer
    # runs), so the tuned model never falls below it on the validation split.
    untuned = finetuned[finetuned["preset"] == "all"].drop(index="tuned", errors="ignore")
    start = untuned["val_accuracy"].idxmax()
    assert trials.loc[0, "user_attrs_enqueued_from"] == start
    assert trials.loc[0, "params_lr"] == pytest.approx(untuned.loc[start, "lr"])
    assert finetuned.loc["tuned", "val_accuracy"] >= untuned.loc[start, "val_accuracy"]

    history = pd.read_csv(_latest(reporting, "history.csv"))
    assert set(history["approach"]) >= {"head", "all", "adam_lr3e-03", "tuned", "trial_000"} - {
        "trial_000"
    }
    for figure in (
        "finetune_curves",
        "optimizer_curves",
        "accuracy_by_approach",
        "optimization_history",
        "intermediate_values",
        "param_importances",
    ):
        png = _latest(reporting / "figures", f"{figure}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    split = json.loads(
        _latest(kedro_project / "data/05_model_input/transfer", "target_split.json").read_text()
    )
    assert set(split["train"]).isdisjoint(split["val"])
    assert set(split["train"]).isdisjoint(split["test"])
    assert (kedro_project / "data/07_model_output/transfer/optuna.db").is_file()

    client, runs = mlflow_runs(kedro_project)
    by_name = {r.data.tags["mlflow.runName"]: r for r in runs}
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent_id = parents[0].info.run_id
    for name in ("source", "svm", "logistic", "head", "all", "adam_lr3e-03", "search", "tuned"):
        assert by_name[name].data.tags["mlflow.parentRunId"] == parent_id, name
    search_id = by_name["search"].info.run_id
    for trial in ("trial_000", "trial_001"):
        assert by_name[trial].data.tags["mlflow.parentRunId"] == search_id
        assert float(by_name[trial].data.params["lr"]) > 0
    assert "test_accuracy" in by_name["head"].data.metrics
    assert (
        "stopped_epoch" in by_name["head"].data.metrics
        or by_name["head"].data.metrics["best_epoch"] >= 1
    )
    search_figures = [a.path for a in client.list_artifacts(search_id, "figures")]
    assert "figures/optimization_history.png" in search_figures
    assert "figures/param_importances.png" in search_figures
    parent_figures = [a.path for a in client.list_artifacts(parent_id, "figures")]
    assert "figures/optimizer_curves.png" in parent_figures


def test_killed_study_resumes_and_matches_a_fresh_run(run_kedro, kedro_project: Path) -> None:
    """Killed after epoch 1 of the 'all' preset (patience 1: early stopping's state must
    survive); an in-memory search so both runs search alike."""
    from tests.resume_support import check_kill_and_resume

    summary = check_kill_and_resume(
        run_kedro,
        kedro_project,
        "transfer",
        {
            **TINY,
            "transfer.source.training.epochs": 1,
            "transfer.finetune.presets": ["all"],
            "transfer.optimizers.names": ["sgd"],
            "transfer.search.n_trials": 1,
            "transfer.search.storage": "memory",
        },
        kill="all:1",
        run_name="all",
        summary="data/08_reporting/transfer/summary.csv",
        key="approach",
        metrics=["approach", "val_accuracy", "test_accuracy", "epochs_run", "best_epoch"],
    )
    assert summary["approach"].tolist() == ["all", "logistic", "sgd_lr3e-03", "svm", "tuned"]
