"""Variants in worker processes: ``kedro run --runner=ParallelRunner`` on a tiny depth
study, variant runs nested under the run's one parent run; and every variant node reads
and writes persisted datasets only, so it can run in any process or orchestrator task."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from kedro.io import MemoryDataset
from kedro.runner import ParallelRunner

from tests.conftest import mlflow_runs

TINY = {
    "cnn_depth.groups.cnn.enabled": False,
    "cnn_depth.groups.mlp.families": ["mlp", "resmlp"],
    "cnn_depth.groups.mlp.depths": [2],
    "cnn_depth.groups.mlp.model.width": 16,
    "cnn_depth.training.epochs": 1,
    "cnn_depth.threads": 1,
    "dataset_analysis.subsample": 60,
}
STUDIES = ["cnn_depth", "transfer", "cam", "init_study", "artworks"]


def _latest(path: Path) -> Path:
    versions = sorted(path.iterdir())
    assert versions, f"no saved version of {path}"
    return versions[-1] / path.name


def _assert_variants_nest_under_one_parent(project: Path) -> None:
    client, runs = mlflow_runs(project)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    # One parent, named after the study and the env: no stray runs.
    assert [r.data.tags["mlflow.runName"] for r in parents] == ["cnn_depth (local)"]
    children = {r.data.tags["mlflow.runName"]: r for r in runs if r not in parents}
    assert sorted(children) == ["mlp_d2", "resmlp_d2"]
    for child in children.values():
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert child.info.status == "FINISHED"
        assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == 1


@pytest.mark.parametrize(
    ("start_method", "tags"),
    [
        ("fork", None),  # Linux's default: the whole study, report included
        ("spawn", ["data", "training"]),  # macOS's default; no project hook runs in workers
    ],
)
def test_variants_train_in_worker_processes_under_one_parent_run(
    run_kedro, kedro_project: Path, monkeypatch: pytest.MonkeyPatch, start_method, tags
) -> None:
    monkeypatch.setenv("KEDRO_MP_CONTEXT", start_method)
    run_kedro(["cnn_depth"], TINY, runner=ParallelRunner(max_workers=2), tags=tags)
    _assert_variants_nest_under_one_parent(kedro_project)
    models = kedro_project / "data/06_models/cnn_depth/mlp"
    for variant in ("mlp_d2", "resmlp_d2"):
        assert _latest(models / variant / "weights.pt").stat().st_size > 0
    if tags is None:
        reporting = kedro_project / "data/08_reporting/cnn_depth"
        summary = pd.read_csv(_latest(reporting / "summary.csv"))
        assert sorted(summary["variant"]) == ["mlp_d2", "resmlp_d2"]
        assert summary["mlflow_run_id"].notna().all()
        assert "mlp_d2" in _latest(reporting / "report.html").read_text()
        client, runs = mlflow_runs(kedro_project)
        (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        # Study-level tables and figures, logged in workers, land in the parent run.
        assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
            "figures",
            "tables",
            "report",
        }


def _memory_datasets(catalog, names) -> list[str]:
    """Names a node hands over in memory: not in the catalog, or a MemoryDataset there."""
    return sorted(
        name
        for name in names
        if not name.startswith("params:")
        and name != "parameters"
        and (catalog.get(name) is None or isinstance(catalog.get(name), MemoryDataset))
    )


def test_variant_nodes_read_and_write_persisted_datasets_only(kedro_project: Path) -> None:
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(kedro_project)
    with KedroSession.create(project_path=kedro_project) as session:
        catalog = session.load_context().catalog
        for study in STUDIES:
            # Study-level nodes sit in the study's own namespace; variants one level below.
            variants = [n for n in pipelines[study].nodes if n.namespace != study]
            assert variants, study
            for variant in variants:
                handed = _memory_datasets(catalog, [*variant.inputs, *variant.outputs])
                assert not handed, f"{variant.name} hands over in memory: {handed}"
        # The depth study persists every hand-off, so each node can be its own task.
        depth = pipelines["cnn_depth"]
        consumed = {name for n in depth.nodes for name in n.inputs}
        handed = _memory_datasets(catalog, depth.all_outputs() & consumed)
        assert not handed, f"cnn_depth hands over in memory: {handed}"
