"""The MLflow lineage helpers on their own: which runs count as killed, and where a
reused variant's run is found from (docs/resume.md, "What a kill leaves in MLflow")."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from cnn_lab.runtime import tracking

PARENT = "mlflow.parentRunId"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[mlflow.MlflowClient]:
    """A throwaway SQLite store, made MLflow's, and forgotten afterwards."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "lineage")  # start_run()'s, no global
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    client = mlflow.MlflowClient()
    client.create_experiment("lineage")
    yield client
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def _ended_pid() -> int:
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(process.stdout)


def _study(client: mlflow.MlflowClient, status: str) -> tuple[str, str]:
    """A parent run ended with ``status`` and one finished variant run under it."""
    parent = client.create_run(mlflow.get_experiment_by_name("lineage").experiment_id)
    experiment = parent.info.experiment_id
    child = client.create_run(experiment, tags={PARENT: parent.info.run_id})
    client.set_terminated(child.info.run_id, "FINISHED")
    client.set_terminated(parent.info.run_id, status)
    return parent.info.run_id, child.info.run_id


def test_a_process_counts_as_gone_only_when_it_can_be_told() -> None:
    host = socket.gethostname()
    assert tracking._process_gone(f"{host}:{_ended_pid()}:")
    assert not tracking._process_gone(tracking._process_identity(os.getpid()))
    assert tracking._process_gone(f"{host}:{os.getpid()}:1")  # the pid, reused by another
    assert not tracking._process_gone(f"another-{host}:{_ended_pid()}:")
    assert not tracking._process_gone(None)


def test_killed_runs_are_closed_and_live_ones_left(store: mlflow.MlflowClient) -> None:
    experiment = mlflow.get_experiment_by_name("lineage").experiment_id
    gone = f"{socket.gethostname()}:{_ended_pid()}:"
    killed = store.create_run(experiment, tags={tracking.PROCESS_TAG: gone}).info.run_id
    variant = store.create_run(experiment, tags={PARENT: killed}).info.run_id
    live = store.create_run(
        experiment, tags={tracking.PROCESS_TAG: tracking._process_identity(os.getpid())}
    ).info.run_id
    untagged = store.create_run(experiment).info.run_id
    with mlflow.start_run(experiment_id=experiment) as run:
        assert tracking.close_killed_runs(run.info.run_id) == [killed]
    for run_id in (killed, variant):
        closed = store.get_run(run_id)
        assert closed.info.status == "KILLED"
        assert closed.data.tags[tracking.CLOSED_BY_TAG] == run.info.run_id
    assert store.get_run(live).info.status == "RUNNING"
    assert store.get_run(untagged).info.status == "RUNNING"


def test_a_reused_run_is_adopted_only_from_a_parent_that_did_not_finish(
    store: mlflow.MlflowClient,
) -> None:
    complete, kept = _study(store, "FINISHED")
    killed, adopted = _study(store, "KILLED")
    with mlflow.start_run() as run:
        tracking.claim_finished(kept, "mlp_d2")
        tracking.claim_finished(adopted, "resmlp_d2")
    new = store.get_run(run.info.run_id).data.tags
    assert store.get_run(kept).data.tags[PARENT] == complete  # a complete study keeps it
    assert new["cnn_lab.reused.mlp_d2"] == kept
    tags = store.get_run(adopted).data.tags
    assert tags[PARENT] == run.info.run_id and tags["cnn_lab.previous_parent"] == killed
    assert store.get_run(killed).data.tags["cnn_lab.resumed_by"] == run.info.run_id
    assert "cnn_lab.reused.resmlp_d2" not in new
