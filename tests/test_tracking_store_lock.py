"""Two runs started together on a fresh project both get a working MLflow store: the
schema is created once, under a file lock, instead of by both at once."""

from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path
from typing import Any


def _open_store(uri: str, barrier: Any, results: Any) -> None:
    try:
        barrier.wait(timeout=120)  # both start at the same moment, as two `kedro run`s did
        from cnn_lab.runtime.tracking_check import check_tracking_store

        check_tracking_store(uri)
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=uri)  # what kedro-mlflow opens next
        experiment = client.create_experiment(f"run-{multiprocessing.current_process().pid}")
        client.create_run(experiment)
        results.put("ok")
    except BaseException:
        results.put(traceback.format_exc())


def test_two_processes_initialise_a_fresh_store_at_once(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_open_store, args=(uri, barrier, results)) for _ in "ab"]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes == ["ok", "ok"], "\n".join(outcomes)
    assert (tmp_path / "mlflow.db.lock").exists()


def test_a_waiting_run_says_what_it_waits_for(tmp_path: Path, caplog) -> None:
    import logging
    import threading

    from filelock import FileLock

    from cnn_lab.runtime.tracking_check import prepare_sqlite_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    held = FileLock(tmp_path / "mlflow.db.lock", thread_local=False)
    held.acquire()
    threading.Timer(1.0, held.release).start()
    with caplog.at_level(logging.INFO, logger="cnn_lab.runtime.tracking_check"):
        prepare_sqlite_store(uri)
    assert "waiting for" in caplog.text and "mlflow.db.lock" in caplog.text
