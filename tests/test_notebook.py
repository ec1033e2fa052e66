"""notebooks/compare_runs.ipynb executes by the documented command, from outside the project,
against the store a tiny run created, and says so plainly when the store has no runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT, nested
from tests.pipelines.cnn_depth.test_pipeline import TINY
from tests.pipelines.init_study.test_pipeline import TINY as TINY_INIT


def _execute(project: Path, cwd: Path, output: Path) -> str:
    """`jupyter nbconvert --to notebook --execute` (docs/reports.md) on the project's copy of
    the notebook; the text and Markdown of every output, in order."""
    notebook = project / "notebooks" / "compare_runs.ipynb"
    notebook.parent.mkdir(exist_ok=True)
    shutil.copy(PROJECT_ROOT / "notebooks" / "compare_runs.ipynb", notebook)
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI")  # the notebook must find the project's store itself
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    command = ["jupyter", "nbconvert", "--to", "notebook", "--execute", "--output", str(output)]
    done = subprocess.run(
        [*command, str(notebook)], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cells = json.loads(output.read_text())["cells"]
    texts = []
    for cell in cells:
        for out in cell.get("outputs", []):
            texts.append("".join(out.get("text", "")))
            texts.append("".join(out.get("data", {}).get("text/markdown", "")))
            if "image/png" in out.get("data", {}):
                texts.append("<png>")
    return "\n".join(texts)


def _train(project: Path, studies: list[str], params: dict[str, object]) -> None:
    """One ``kedro run`` of ``studies`` up to their training nodes: the variant runs the
    notebook reads, recorded by the project's own hooks, without the figures, analyses and
    reports it never reads (two thirds of a tiny run's time)."""
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=nested(params)) as session:
        session.load_context()  # the run's parameters, so the pipelines are this run's grids
        training = [n.name for s in studies for n in pipelines[s].nodes if "training" in n.tags]
        assert training, studies
        session.run(pipeline_names=studies, to_nodes=training)


def test_compare_runs_notebook_compares_every_study(kedro_project: Path, tmp_path: Path) -> None:
    _train(kedro_project, ["cnn_depth", "init_study"], {**TINY, **TINY_INIT})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outputs = _execute(kedro_project, elsewhere, tmp_path / "executed.ipynb")
    assert f"MLflow store sqlite:///{kedro_project.resolve()}/mlflow.db" in outputs
    assert "studies: cnn_depth, init_study" in outputs
    assert "## cnn_depth" in outputs and "## init_study" in outputs
    assert "cnn_depth: 3 variant runs of 3 variants from 1 kedro runs" in outputs
    figures = kedro_project / "data/08_reporting/compare_runs"
    saved = sorted(path.name for path in figures.glob("*.png"))
    assert saved == [
        "cnn_depth_test_accuracy_by_depth.png",
        "cnn_depth_test_accuracy_by_variant.png",
        "init_study_test_accuracy_by_variant.png",
    ]
    assert outputs.count("<png>") == 3
    assert all((figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in saved)


def test_compare_runs_notebook_on_an_empty_store(kedro_project: Path, tmp_path: Path) -> None:
    outputs = _execute(kedro_project, kedro_project / "data", tmp_path / "executed.ipynb")
    assert "No variant runs in the MLflow store" in outputs
    assert "kedro run --pipelines=cnn_depth" in outputs
