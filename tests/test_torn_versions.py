"""A run killed between its summary and its figures leaves a summary version without
them. A later full run loads its own versions, so that one is only a leftover; a partial
run (``--from-nodes``), which loads the latest versions, refuses to mix it with an earlier
run's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline, node

from cnn_lab.runtime.isolation import StaleInputs, check_read_versions

COMPLETE, TORN = "2024-01-01T00.00.00.000Z", "2099-01-01T00.00.00.000Z"


def _registered() -> Pipeline:
    return Pipeline(
        [
            node(lambda r: r, "results", "summary", name="summarise"),
            node(lambda s: s, "summary", "figure", name="plot"),
            node(lambda s, f: f"{s}{f}", ["summary", "figure"], "report", name="write_report"),
        ]
    )


def _catalog(folder: Path) -> DataCatalog:
    entry = {"type": "json.JSONDataset", "versioned": True}
    names = ("summary", "figure")
    config = {name: {**entry, "filepath": str(folder / f"{name}.json")} for name in names}
    return DataCatalog.from_config(config)


def _save(folder: Path, name: str, version: str) -> None:
    path = folder / f"{name}.json" / version / f"{name}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(version))


def test_report_alone_refuses_a_summary_newer_than_its_figures(tmp_path: Path) -> None:
    for name in ("summary", "figure"):
        _save(tmp_path, name, COMPLETE)
    _save(tmp_path, "summary", TORN)  # killed before plot: no figure, no report
    report_only = _registered().from_nodes("write_report")
    with pytest.raises(StaleInputs) as info:
        check_read_versions(_catalog(tmp_path), report_only, _registered, {})
    message = str(info.value)
    assert f"figure ({COMPLETE}) is older than what it is made from: summary ({TORN})" in message
    assert "--from-nodes=plot" in message and "--load-versions" in message

    # Redoing the figures from the torn summary reads one dataset: nothing to mix.
    check_read_versions(_catalog(tmp_path), _registered().from_nodes("plot"), _registered, {})
    # Versions chosen by hand are the user's call.
    chosen = {"summary": COMPLETE}
    check_read_versions(_catalog(tmp_path), report_only, _registered, chosen)


def test_figures_made_after_their_summary_are_read_together(tmp_path: Path) -> None:
    _save(tmp_path, "summary", COMPLETE)
    _save(tmp_path, "figure", TORN)  # e.g. an orchestrator's plot task, a later session
    report_only = _registered().from_nodes("write_report")
    check_read_versions(_catalog(tmp_path), report_only, _registered, {})


TINY = {
    "cnn_depth.groups.cnn.enabled": False,
    "cnn_depth.groups.mlp.depths": [2],
    "cnn_depth.groups.mlp.families": ["mlp"],
    "cnn_depth.groups.mlp.model.width": 8,
    "cnn_depth.training.epochs": 1,
}


def test_a_torn_study_version_is_refused_then_redone(run_kedro, kedro_project: Path) -> None:
    run_kedro(["cnn_depth"], TINY)
    reporting = kedro_project / "data/08_reporting/cnn_depth"
    (complete,) = [v.name for v in (reporting / "summary.csv").iterdir()]
    # A later run killed after summarise: its summary and history, no figures, no report.
    for table in ("summary.csv", "history.csv"):
        (reporting / table / TORN).mkdir()
        (reporting / table / complete / table).rename(reporting / table / TORN / table)

    with pytest.raises(StaleInputs, match=r"cnn_depth\.figures\.\w+ \(.*\) is older than what it"):
        run_kedro(["cnn_depth"], TINY, from_nodes=["cnn_depth.write_report"])
    # Redoes what is made from the summary (figures, claims), then the report.
    run_kedro(["cnn_depth"], TINY, from_nodes=["cnn_depth.plot", "cnn_depth.check_claims"])
    assert len(list((reporting / "report.md").iterdir())) == 2
