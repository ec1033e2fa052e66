"""Is the MLflow tracking store there and writable? Asked before a run trains, so a
wrong ``MLFLOW_TRACKING_URI`` or a stopped server fails in seconds, not after hours.

A fresh SQLite store is also created (or an old one upgraded) here, once, under a file
lock next to it: two runs started together otherwise both run MLflow's schema migrations
and both crash. MLflow is imported only for that, not at module import.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

from filelock import FileLock, Timeout

logger = logging.getLogger(__name__)


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
    prepare_sqlite_store(uri)


def prepare_sqlite_store(uri: str, wait: float = 600.0) -> None:
    """Create the store's schema, or bring an older one up to date, under
    ``<db>.lock``; a run that finds the lock taken says so and waits."""
    lock = FileLock(f"{uri[len('sqlite:///') :]}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info(
            "waiting for %s: another run is creating or upgrading the MLflow store",
            lock.lock_file,
        )
        lock.acquire(timeout=wait)
    try:
        _create_or_upgrade(uri)
    finally:
        lock.release()


def _create_or_upgrade(uri: str) -> None:
    # MLflow creates a missing schema when it opens a store, but not under any lock, and
    # refuses an old one: do both here, once, so kedro-mlflow opens a ready store.
    from mlflow.store.db import utils as db_utils
    from mlflow.tracking._tracking_service.utils import _get_store

    engine = db_utils.create_sqlalchemy_engine_with_retry(uri)
    try:
        if (
            db_utils._all_tables_exist(engine)
            and db_utils._get_schema_version(engine) != db_utils._get_latest_schema_revision()
        ):
            logger.warning("upgrading the MLflow store schema of %s", uri)
            db_utils._upgrade_db(engine)
    finally:
        engine.dispose()
    _get_store(uri)  # MLflow's own store: creates the tables and the default experiment


def _check_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"{folder} is not writable")
