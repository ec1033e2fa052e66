"""Worker processes: GPU assignment, the parent MLflow run handed to workers, and the
tracking URI every process resolves. No GPU needed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import mlflow
import pytest

from cnn_lab.runtime.parallel import (
    MLFLOW_RUN_ID_ENV,
    PARENT_RUN_ENV,
    export_parent_run,
    gpu_for_worker,
    parse_parallel,
    worker_number,
)
from cnn_lab.study.params import ParameterError


def test_round_robin_spreads_workers_over_the_visible_gpus() -> None:
    assert [gpu_for_worker(w, "round_robin", 2) for w in range(5)] == [
        "cuda:0",
        "cuda:1",
        "cuda:0",
        "cuda:1",
        "cuda:0",
    ]
    assert {gpu_for_worker(w, "round_robin", 3) for w in (7, 8, 9)} == {
        "cuda:0",
        "cuda:1",
        "cuda:2",
    }


def test_a_fixed_list_is_cycled_and_checked_against_the_visible_gpus() -> None:
    assert [gpu_for_worker(w, [3, 1], 4) for w in range(4)] == [
        "cuda:3",
        "cuda:1",
        "cuda:3",
        "cuda:1",
    ]
    with pytest.raises(ValueError, match=r"parallel.devices: GPU 2 is listed but only 2 GPU"):
        gpu_for_worker(0, [2], 2)


def test_no_assignment_or_no_gpu_leaves_the_study_device_alone() -> None:
    assert gpu_for_worker(3, None, 8) is None
    assert gpu_for_worker(3, "round_robin", 0) is None
    assert gpu_for_worker(3, [0, 1], 0) is None


def test_devices_parameter_is_validated_with_its_key() -> None:
    assert parse_parallel(None).devices is None
    assert parse_parallel({"devices": "round_robin"}).devices == "round_robin"
    assert parse_parallel({"devices": "0 1"}).devices == [0, 1]  # --params "parallel.devices=0 1"
    assert parse_parallel({"devices": [2]}).devices == [2]
    with pytest.raises(ParameterError, match=r"parallel.devices: got 'fastest'"):
        parse_parallel({"devices": "fastest"})
    with pytest.raises(ParameterError, match=r"parallel.devices"):
        parse_parallel({"devices": [-1]})
    with pytest.raises(ParameterError, match=r"parallel.device: unknown key"):
        parse_parallel({"device": "round_robin"})


def _gpu_of_this_worker(both_running: Any) -> tuple[int | None, str | None]:
    # Each task holds its worker until the other task runs too, so the two tasks are in two
    # workers however slowly the second worker starts on a loaded machine.
    both_running.wait(timeout=60)
    worker = worker_number()
    return worker, gpu_for_worker(worker, "round_robin", 2)  # type: ignore[arg-type]


def test_the_workers_of_one_pool_get_different_gpus() -> None:
    assert worker_number() is None  # the main process keeps the study's device
    context = get_context("fork")
    with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
        both_running = manager.Barrier(2)
        tasks = [pool.submit(_gpu_of_this_worker, both_running) for _ in range(2)]
        results = [task.result(timeout=120) for task in tasks]
    workers = {w for w, _ in results}
    assert len(workers) == 2 and None not in workers
    assert {gpu for _, gpu in results} == {"cuda:0", "cuda:1"}


@pytest.fixture
def no_exported_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nothing exported and no active run, before and after."""
    monkeypatch.delenv(PARENT_RUN_ENV, raising=False)
    monkeypatch.delenv(MLFLOW_RUN_ID_ENV, raising=False)
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture
def tracking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_exported_run: None
) -> mlflow.MlflowClient:
    """An empty SQLite store."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(uri)


def test_a_worker_without_an_active_run_nests_under_the_exported_parent(
    tracking: mlflow.MlflowClient,
) -> None:
    from cnn_lab.runtime.tracking import child_run, log_text

    experiment = tracking.create_experiment("cnn_lab")
    parent = tracking.create_run(experiment, run_name="cnn_depth").info.run_id
    # What the main process of a ParallelRunner run leaves a (spawned) worker.
    export_parent_run(parent, mlflow.get_tracking_uri(), workers=True)
    assert mlflow.active_run() is None
    with child_run("mlp_d2", {"depth": 2}, {"study": "cnn_depth"}) as run_id:
        assert run_id is not None and run_id != parent
        with child_run("trial_000", {}, {}) as inner:  # e.g. search trials under "search"
            pass
    log_text("study-level", "notes.txt")
    child = tracking.get_run(run_id)
    assert child.data.tags["mlflow.parentRunId"] == parent
    assert child.info.experiment_id == experiment
    assert child.data.params["depth"] == "2"
    assert tracking.get_run(inner).data.tags["mlflow.parentRunId"] == run_id
    # Study-level logging in the worker lands in the parent; MLflow's own MLFLOW_RUN_ID
    # was consumed, so a later run started here is a new run, not the parent again.
    assert [a.path for a in tracking.list_artifacts(parent)] == ["notes.txt"]
    assert MLFLOW_RUN_ID_ENV not in os.environ
    export_parent_run(None)
    assert PARENT_RUN_ENV not in os.environ


def test_mlflow_run_id_is_exported_only_for_worker_processes(no_exported_run: None) -> None:
    export_parent_run("abc", workers=False)  # SequentialRunner: nodes run here
    assert os.environ[PARENT_RUN_ENV] == "abc" and MLFLOW_RUN_ID_ENV not in os.environ
    export_parent_run("abc", workers=True)
    assert os.environ[MLFLOW_RUN_ID_ENV] == "abc"
    export_parent_run(None)
    assert PARENT_RUN_ENV not in os.environ and MLFLOW_RUN_ID_ENV not in os.environ


def test_no_tracking_without_a_run_or_an_exported_parent(no_exported_run: None) -> None:
    from cnn_lab.runtime.tracking import child_run

    with child_run("mlp_d2", {}, {}) as run_id:
        assert run_id is None
    assert mlflow.active_run() is None


def test_tracking_uri_follows_the_environment_else_the_project_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kedro.config import OmegaConfigLoader

    from cnn_lab.runtime.project import CONFIG_LOADER_ARGS, tracking_uri
    from tests.conftest import PROJECT_ROOT

    (tmp_path / "pyproject.toml").write_text("[tool.kedro]\npackage_name = 'cnn_lab'\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # found from a subfolder too

    def configured() -> str:
        loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), **CONFIG_LOADER_ARGS)
        loader.config_patterns["mlflow"] = ["mlflow*"]
        return loader["mlflow"]["server"]["mlflow_tracking_uri"]

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert configured() == tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example.org:5000")
    assert tracking_uri() == "http://mlflow.example.org:5000"
    assert configured() == "http://mlflow.example.org:5000"
