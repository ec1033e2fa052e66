"""Is the MLflow tracking store there and writable? Asked before a run trains, so a
wrong ``MLFLOW_TRACKING_URI`` or a stopped server fails in seconds, not after hours.

Kept free of MLflow and Kedro imports: the project hook calls it for every run.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse


class TrackingStoreError(RuntimeError):
    """The tracking store cannot be reached or written."""


def check_tracking_store(uri: str, timeout: float = 5.0) -> None:
    """Raise :class:`TrackingStoreError` naming the URI and where it is configured."""
    parsed = urlparse(uri)
    try:
        if parsed.scheme == "sqlite":
            _check_sqlite(uri)
        elif parsed.scheme in ("http", "https"):
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
        elif parsed.scheme in ("", "file"):
            _check_folder(Path(unquote(parsed.path)))
        # other schemes (databricks, postgresql, ...) are left to MLflow itself
    except Exception as err:
        raise TrackingStoreError(
            f"the MLflow tracking store {uri!r} cannot be reached or written ({err}). "
            "Nothing was trained. Set MLFLOW_TRACKING_URI to a reachable store, or fix "
            "server.mlflow_tracking_uri in conf/<env>/mlflow.yml (or start the server)."
        ) from err


def _check_sqlite(uri: str) -> None:
    path = Path(uri[len("sqlite:///") :])
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=5)
    try:
        connection.execute("BEGIN IMMEDIATE")  # takes the write lock: proves we may write
        connection.rollback()
    finally:
        connection.close()


def _check_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"{folder} is not writable")
