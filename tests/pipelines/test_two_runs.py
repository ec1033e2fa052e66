"""Two ``kedro run --pipelines=cnn_depth`` started together in one project folder, with
different parameters: both succeed, and each run's summary names variant runs that are
children of its own parent run and trained with its own parameters (docs/resume.md,
"Two runs at once")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from tests.conftest import FAST_ANALYSIS, PROJECT_ROOT, mlflow_runs, nested

WIDTHS = {"run_a": 8, "run_b": 12}
PARENT = "mlflow.parentRunId"


def _parameters(width: int) -> dict:
    return nested(
        {
            "cnn_depth.groups.cnn.enabled": False,
            "cnn_depth.groups.mlp.depths": [2],
            "cnn_depth.groups.mlp.families": ["mlp", "resmlp"],
            "cnn_depth.groups.mlp.model.width": width,
            "cnn_depth.training.epochs": 1,
            **FAST_ANALYSIS,
        }
    )


def _start(project: Path, env: str) -> subprocess.Popen:
    """``kedro run`` with the config env ``env`` (base + its parameters), not waited for."""
    folder = project / "conf" / env
    folder.mkdir()
    (folder / "parameters.yml").write_text(yaml.safe_dump(_parameters(WIDTHS[env])))
    return subprocess.Popen(
        [sys.executable, "-m", "kedro", "run", "--pipelines=cnn_depth", f"--env={env}"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_two_runs_at_once_keep_their_own_variants(kedro_project: Path) -> None:
    processes = [_start(kedro_project, env) for env in WIDTHS]  # a fresh store: no mlflow.db
    for process in processes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output[-3000:]

    _, runs = mlflow_runs(kedro_project)
    parents = [r for r in runs if PARENT not in r.data.tags]
    assert sorted(r.info.status for r in parents) == ["FINISHED", "FINISHED"]
    by_id = {r.info.run_id: r for r in runs}
    widths = set()
    for parent in parents:
        summary = _summary(kedro_project, parent.data.tags["run_id"])
        (width,) = set(summary["width"])
        widths.add(width)
        assert sorted(summary["variant"]) == ["mlp_d2", "resmlp_d2"]
        for run_id in summary["mlflow_run_id"]:
            variant = by_id[run_id]
            assert variant.data.tags[PARENT] == parent.info.run_id
            assert variant.data.params["width"] == str(width)
    assert widths == set(WIDTHS.values())  # each run kept its own parameters


def _summary(project: Path, version: str) -> pd.DataFrame:
    """The summary the run with Kedro session id ``version`` saved."""
    return pd.read_csv(project / f"data/08_reporting/cnn_depth/summary.csv/{version}/summary.csv")
