"""The depth study survives a SIGKILL, reports divergence, and refuses to start
without a writable MLflow store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import mlflow_runs
from tests.resume_support import kedro_run_killed

TWO = {
    "cnn_depth.groups.cnn.enabled": False,
    "cnn_depth.groups.mlp.depths": [2],
    "cnn_depth.groups.mlp.families": ["mlp", "resmlp"],
    "cnn_depth.groups.mlp.model.width": 16,
    "cnn_depth.training.epochs": 2,
}
PARENT = "mlflow.parentRunId"
METRICS = ["best_val_accuracy", "final_val_accuracy", "test_accuracy", "test_loss", "steps"]


def _summaries(project: Path) -> list[pd.DataFrame]:
    folder = project / "data/08_reporting/cnn_depth/summary.csv"
    return [
        pd.read_csv(v / "summary.csv").sort_values("variant").reset_index(drop=True)
        for v in sorted(folder.iterdir())
    ]


def test_killed_study_resumes_and_matches_a_fresh_run(run_kedro, kedro_project: Path) -> None:
    assert kedro_run_killed(kedro_project, "cnn_depth", TWO, kill="resmlp_d2:1") == -9
    checkpoints = kedro_project / "data/06_models/checkpoints/cnn_depth"
    # mlp_d2 finished before the kill: one file, its epoch fallback dropped.
    (finished,) = checkpoints.glob("mlp_d2-*.ckpt")
    assert not finished.name.endswith(".prev.ckpt")
    assert len(list(checkpoints.glob("resmlp_d2-*.ckpt"))) == 1  # epoch 1 only

    _, runs = mlflow_runs(kedro_project)
    (killed,) = [r for r in runs if PARENT not in r.data.tags]
    assert killed.info.status == "RUNNING"  # what the kill leaves behind

    run_kedro(["cnn_depth"], TWO)  # resumes resmlp_d2, reuses mlp_d2
    client, runs = mlflow_runs(kedro_project)
    _assert_lineage(kedro_project, runs, killed.info.run_id)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.tags["mlflow.runName"] for r in children) == ["mlp_d2", "resmlp_d2"]
    resumed = next(r for r in children if r.data.tags["mlflow.runName"] == "resmlp_d2")
    assert resumed.data.tags["resumed_from_epoch"] == "1"
    for child in children:  # one point per epoch: no gap, no duplicate
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "train_loss")]
        assert sorted(steps) == [1, 2]

    run_kedro(["cnn_depth"], {**TWO, "cnn_depth.resume": False})  # the uninterrupted reference
    resumed_summary, fresh = _summaries(kedro_project)
    assert resumed_summary["epochs_run"].tolist() == [2, 2]
    pd.testing.assert_frame_equal(resumed_summary[METRICS], fresh[METRICS])  # exact
    _, runs = mlflow_runs(kedro_project)
    assert sum("mlflow.parentRunId" in r.data.tags for r in runs) == 4  # fresh: 2 new runs


def _assert_lineage(project: Path, runs: list, killed_id: str) -> None:
    """After the rerun no run is left RUNNING, the killed parent is KILLED and names the
    run that resumed it, and every variant of the final summary is a finished child of the
    final parent (docs/resume.md, "What a kill leaves in MLflow")."""
    by_id = {r.info.run_id: r for r in runs}
    assert [r.data.tags.get("mlflow.runName") for r in runs if r.info.status == "RUNNING"] == []
    (final,) = [r for r in runs if PARENT not in r.data.tags and r.info.status == "FINISHED"]
    killed = by_id[killed_id]
    assert killed.info.status == "KILLED"
    assert killed.data.tags["cnn_lab.resumed_by"] == final.info.run_id
    assert killed.data.tags["cnn_lab.closed_by"] == final.info.run_id
    version = final.data.tags["run_id"]  # the Kedro session id names the summary's version
    summary = pd.read_csv(
        project / f"data/08_reporting/cnn_depth/summary.csv/{version}/summary.csv"
    )
    assert sorted(summary["variant"]) == ["mlp_d2", "resmlp_d2"]
    for run_id in summary["mlflow_run_id"]:
        variant = by_id[run_id]
        assert variant.data.tags[PARENT] == final.info.run_id, variant.data.tags
        assert variant.data.tags["cnn_lab.previous_parent"] == killed_id
        assert variant.info.status == "FINISHED"


def test_divergence_is_reported_and_other_variants_run(
    run_kedro, kedro_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from cnn_lab.pipelines.cnn_depth import nodes

    real_build = nodes.build_model

    def build_with_nan(family: str, **kwargs):
        model = real_build(family, **kwargs)
        if family == "mlp" and not any(p.is_meta for p in model.parameters()):
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))  # injected divergence
        return model

    monkeypatch.setattr(nodes, "build_model", build_with_nan)
    run_kedro(["cnn_depth"], TWO)

    (summary,) = _summaries(kedro_project)
    rows = summary.set_index("variant")
    assert rows.loc["mlp_d2", "status"] == "diverged"
    assert rows.loc["mlp_d2", "diverged_epoch"] == 1
    assert rows.loc["resmlp_d2", "status"] == "ok"
    assert rows.loc["resmlp_d2", "epochs_run"] == 2
    _, runs = mlflow_runs(kedro_project)
    tags = {r.data.tags.get("mlflow.runName"): r.data.tags for r in runs}
    assert tags["mlp_d2"]["status"] == "diverged"
    assert tags["mlp_d2"]["diverged_epoch"] == "1"
    assert tags["resmlp_d2"]["status"] == "ok"


@pytest.mark.parametrize("uri", ["http://127.0.0.1:9", "sqlite:///{project}/a_file/mlflow.db"])
def test_unreachable_tracking_store_stops_before_training(
    run_kedro, kedro_project: Path, monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    (kedro_project / "a_file").write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri.format(project=kedro_project))
    with pytest.raises(Exception, match="MLFLOW_TRACKING_URI") as info:
        run_kedro(["cnn_depth"], TWO)
    assert "mlflow.yml" in str(info.value)
    assert not (kedro_project / "data/06_models").exists()


def test_figures_show_diverged_variants() -> None:
    from cnn_lab.evaluation import plots

    history = pd.DataFrame(
        {
            "family": ["mlp"] * 4,
            "depth": [2, 2, 8, 8],
            "epoch": [1, 2, 1, 2],
            "train_loss": [1.0, 0.5, 2.0, float("nan")],
            "val_accuracy": [0.5, 0.6, 0.2, 0.1],
        }
    )
    figure = plots.curves_by_depth(history, "train_loss", "loss", log=True)
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert labels == ["depth 2", "depth 8 (diverged, epoch 2)"]
    summary = pd.DataFrame(
        {
            "family": ["mlp", "mlp"],
            "depth": [2, 8],
            "test_accuracy": [0.6, float("nan")],
            "status": ["ok", "diverged"],
            "diverged_epoch": [None, 2],
        }
    )
    texts = [t.get_text() for t in plots.accuracy_vs_depth(summary).axes[0].texts]
    assert texts == ["mlp diverged (epoch 2)"]
