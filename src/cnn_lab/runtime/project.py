"""Where the project is and how its configuration is read: what both Kedro's settings
and the runtime hooks need, kept in a leaf module so neither imports the other."""

from __future__ import annotations

import os
from pathlib import Path


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
