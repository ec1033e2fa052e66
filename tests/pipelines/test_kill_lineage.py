"""A ``kedro run`` killed mid-training, then rerun: MLflow ends with no run left RUNNING,
the killed parent marked KILLED and naming the run that resumed it, and every variant of
the final summary a child of the final parent (docs/resume.md, "What a kill leaves in
MLflow")."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.conftest import FAST_ANALYSIS, mlflow_runs
from tests.resume_support import kedro_run_killed

TINY = {
    "cnn_depth.groups.cnn.enabled": False,
    "cnn_depth.groups.mlp.depths": [2],
    "cnn_depth.groups.mlp.families": ["mlp", "resmlp"],
    "cnn_depth.groups.mlp.model.width": 8,
    "cnn_depth.training.epochs": 2,
    **FAST_ANALYSIS,
}
PARENT = "mlflow.parentRunId"


def test_rerun_closes_the_killed_run_and_shows_every_variant(
    run_kedro, kedro_project: Path
) -> None:
    # mlp_d2 finishes, resmlp_d2 is killed after epoch 1: one reused, one resumed variant.
    assert kedro_run_killed(kedro_project, "cnn_depth", TINY, kill="resmlp_d2:1") == -9
    _, runs = mlflow_runs(kedro_project)
    (killed,) = [r for r in runs if PARENT not in r.data.tags]
    assert killed.info.status == "RUNNING"  # what the kill leaves behind

    run_kedro(["cnn_depth"], TINY)

    _, runs = mlflow_runs(kedro_project)
    by_id = {r.info.run_id: r for r in runs}
    assert [r.data.tags.get("mlflow.runName") for r in runs if r.info.status == "RUNNING"] == []
    (final,) = [r for r in runs if PARENT not in r.data.tags and r.info.status == "FINISHED"]
    killed = by_id[killed.info.run_id]
    assert killed.info.status == "KILLED"
    assert killed.data.tags["cnn_lab.resumed_by"] == final.info.run_id
    assert killed.data.tags["cnn_lab.closed_by"] == final.info.run_id

    summary = _summary(kedro_project, final.data.tags["run_id"])
    assert sorted(summary["variant"]) == ["mlp_d2", "resmlp_d2"]
    for run_id in summary["mlflow_run_id"]:
        variant = by_id[run_id]
        assert variant.data.tags[PARENT] == final.info.run_id, variant.data.tags
        assert variant.data.tags["cnn_lab.previous_parent"] == killed.info.run_id
        assert variant.info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get(PARENT) == final.info.run_id]
    assert len(children) == 2  # the resumed run continued, not duplicated


def _summary(project: Path, version: str) -> pd.DataFrame:
    """The summary the run with Kedro session id ``version`` saved."""
    return pd.read_csv(project / f"data/08_reporting/cnn_depth/summary.csv/{version}/summary.csv")
