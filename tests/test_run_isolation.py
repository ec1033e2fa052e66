"""A run loads the versions it saved, never a newer one another run (or anyone) put
there; credential-like ``--params`` never reach MLflow's tags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

from cnn_lab.runtime.hooks import RunIsolation
from cnn_lab.runtime.isolation import looks_secret, pin_run_versions, redact_credentials

SAVE_VERSION = "2024-01-01T00.00.00.000Z"
NEWER = "2099-01-01T00.00.00.000Z"


def _catalog(folder: Path) -> DataCatalog:
    config = {
        "x": {"type": "json.JSONDataset", "filepath": str(folder / "x.json"), "versioned": True}
    }
    return DataCatalog.from_config(config, save_version=SAVE_VERSION)


def _plant(folder: Path, version: str) -> None:
    """Another run, started a moment later (so a later version), saves its own ``x``."""
    planted = folder / "x.json" / version / "x.json"
    planted.parent.mkdir(parents=True)
    planted.write_text(json.dumps({"from": "another run"}))


def _pipeline(folder: Path, seen: list[Any]) -> Pipeline:
    def plant(_: Any) -> bool:
        _plant(folder, NEWER.replace("2099", "2100"))
        return True

    return Pipeline(
        [
            node(lambda: ({"from": "this run"}, True), None, ["x", "m"], name="produce"),
            node(plant, "m", "m2", name="plant"),  # after our save, before our load
            node(lambda x, _: seen.append(x), ["x", "m2"], None, name="consume"),
        ]
    )


def _run(folder: Path, isolated: bool) -> Any:
    seen: list[Any] = []
    catalog, pipeline = _catalog(folder), _pipeline(folder, seen)
    _plant(folder, NEWER)  # saved while ours was being saved: Kedro then loads "latest"
    if isolated:
        hook = RunIsolation()
        hook.after_catalog_created(catalog, SAVE_VERSION, {})
        hook.before_pipeline_run({"run_id": SAVE_VERSION, "load_versions": {}}, pipeline, catalog)
    SequentialRunner().run(pipeline, catalog)
    return seen[0]


def test_a_run_loads_the_version_it_saved_not_a_newer_one(tmp_path: Path) -> None:
    assert _run(tmp_path / "plain", isolated=False) == {"from": "another run"}  # Kedro's latest
    assert _run(tmp_path / "isolated", isolated=True) == {"from": "this run"}


def test_explicit_load_versions_are_left_alone(tmp_path: Path) -> None:
    catalog, pipeline = _catalog(tmp_path), _pipeline(tmp_path, [])
    assert pin_run_versions(catalog, pipeline, SAVE_VERSION, {}) == ["x"]
    catalog = _catalog(tmp_path)
    assert pin_run_versions(catalog, pipeline, SAVE_VERSION, {"x": "2020"}) == []


def test_credential_like_params_are_redacted() -> None:
    params = {
        "cnn_depth": {"api_key": "abc", "monkey": 3, "dbPassword": "p", "epochs": 2},
        "token": "t",
        "keyboard": 1,
        "aws.secret_access_key": "s",
    }
    assert redact_credentials(params) == {
        "cnn_depth": {"api_key": "***", "monkey": 3, "dbPassword": "***", "epochs": 2},
        "token": "***",
        "keyboard": 1,
        "aws.secret_access_key": "***",
    }
    assert not any(looks_secret(name) for name in ("monkey", "keyboard", "tokenizer", "turkey"))


class _TagRecorder:
    """Stands in for kedro-mlflow, which tags the parent run with ``run_params``."""

    def __init__(self) -> None:
        self.tagged: dict[str, Any] = {}

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self.tagged = dict(run_params)


def test_mlflow_tags_see_redacted_runtime_params(tmp_path: Path) -> None:
    recorder = _TagRecorder()
    manager = _create_hook_manager()
    manager.register(RunIsolation())
    manager.register(recorder)  # registered last: pluggy would call it first without tryfirst
    run_params = {"run_id": SAVE_VERSION, "runtime_params": {"db": {"password": "hunter2"}}}
    manager.hook.before_pipeline_run(
        run_params=run_params, pipeline=Pipeline([]), catalog=DataCatalog()
    )
    assert recorder.tagged["runtime_params"] == {"db": {"password": "***"}}
