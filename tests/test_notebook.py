"""notebooks/compare_runs.ipynb executes headless against a tiny depth-study run."""

from __future__ import annotations

from pathlib import Path

import nbclient  # the test extra: pip install -e ".[test]"
import nbformat

from tests.conftest import PROJECT_ROOT
from tests.pipelines.cnn_depth.test_pipeline import TINY


def test_compare_runs_notebook(run_kedro, kedro_project: Path) -> None:
    params = {**TINY, "dataset_analysis.subsample": 40, "dataset_analysis.perplexity": 5}
    run_kedro(["cnn_depth"], params)
    notebook = nbformat.read(PROJECT_ROOT / "notebooks/compare_runs.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(kedro_project)}},
    )
    client.execute()
    figure = kedro_project / "data/08_reporting/compare_runs/test_accuracy_vs_depth.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    outputs = "".join(
        out.get("text", "") for cell in notebook.cells for out in cell.get("outputs", [])
    )
    assert "3 variant runs from 1 kedro runs" in outputs
