"""Kill-and-resume checks shared by every study's tests (issue 8): a ``kedro run`` killed
by the checkpoint's test-only hook, then rerun, must end where an uninterrupted run ends."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from tests.conftest import PROJECT_ROOT, mlflow_runs, nested


def kedro_run_killed(project: Path, pipeline: str, params: dict[str, Any], kill: str) -> int:
    """``kedro run`` in a subprocess, SIGKILLed right after ``kill`` ("<label>:<epoch>")
    is checkpointed; returns the exit status (-9 when the kill happened). ``params`` go
    through a conf/local file, so lists need no command-line quoting."""
    import yaml

    overrides = project / "conf/local/parameters_killed_run.yml"
    overrides.write_text(yaml.safe_dump(nested(params)))
    env = {**os.environ, "CNN_LAB_KILL_AFTER_EPOCH": kill, "PYTHONPATH": str(PROJECT_ROOT / "src")}
    try:
        process = subprocess.run(
            [sys.executable, "-m", "kedro", "run", f"--pipelines={pipeline}"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        overrides.unlink()
    assert process.returncode in (0, -9), process.stderr[-3000:]
    return process.returncode


def versions(folder: Path) -> list[Path]:
    """Every saved version of a versioned dataset, oldest first."""
    return [v / folder.name for v in sorted(folder.iterdir())]


def check_kill_and_resume(
    run_kedro: Callable[..., Any],
    project: Path,
    pipeline: str,
    params: dict[str, Any],
    *,
    kill: str,
    summary: str,
    key: str,
    metrics: list[str],
    run_name: str | None = None,
) -> pd.DataFrame:
    """Kill after ``kill``, rerun (resumes), run afresh (``resume: false``): the resumed
    summary must equal the fresh one exactly on ``metrics`` (bit-identical on CPU), and
    the killed variant's MLflow run (``run_name``, by default the checkpoint label) must be
    continued, not duplicated. Returns the summary."""
    assert kedro_run_killed(project, pipeline, params, kill) == -9
    run_kedro([pipeline], params)
    run_kedro([pipeline], {**params, f"{pipeline}.resume": False})
    resumed, fresh = (
        pd.read_csv(path).sort_values(key).reset_index(drop=True)
        for path in versions(project / summary)[-2:]
    )
    pd.testing.assert_frame_equal(resumed[metrics], fresh[metrics])

    label, _, epoch = kill.rpartition(":")
    _, runs = mlflow_runs(project)
    named = [r for r in runs if r.data.tags.get("mlflow.runName") == (run_name or label)]
    continued = [r for r in named if r.data.tags.get("resumed_from_epoch") == epoch]
    assert len(continued) == 1, [r.data.tags for r in named]
    assert len(named) == 2  # the continued run and the fresh run: no third, duplicate one
    return resumed
