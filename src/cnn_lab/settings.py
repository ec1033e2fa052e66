"""Kedro project settings: config loading, hooks and the resolvers our YAML uses."""

from __future__ import annotations

import os
from pathlib import Path

from kedro.config import OmegaConfigLoader

from cnn_lab.runtime import console
from cnn_lab.runtime.distributed_hooks import DistributedRunHooks, plugins_to_disable
from cnn_lab.runtime.hooks import (
    RunIsolation,
    StudyGridHook,
    TrackingStoreCheck,
    WorkerProcesses,
)

console.install()  # before Kedro loads its plugins' commands: their imports warn


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder, from the working directory up, holding a Kedro pyproject.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.kedro]" in pyproject.read_text(encoding="utf-8"):
            return folder
    return here


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when a team shares a server, else the project's SQLite file.

    kedro-mlflow 2.0 with MLflow 3 refuses the file-store backend, hence SQLite.
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{find_project_root()}/mlflow.db"


HOOKS = (
    TrackingStoreCheck(),
    RunIsolation(),
    StudyGridHook(),
    DistributedRunHooks(),
    WorkerProcesses(),
    console.RunPresentation(),
)
# torchrun: kedro-mlflow runs on rank 0 only (one MLflow run per launch; distributed_hooks.py).
DISABLE_HOOKS_FOR_PLUGINS = plugins_to_disable()

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An env such as `paper` overrides single keys, not whole top-level blocks.
    "merge_strategy": {"parameters": "soft"},
    "custom_resolvers": {
        "project_root": lambda: find_project_root().as_posix(),
        "tracking_uri": tracking_uri,
    },
}
