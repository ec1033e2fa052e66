"""Shared fixtures. Telemetry is switched off before Kedro or MLflow is imported."""

from __future__ import annotations

import os
import re
import tempfile

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.pop("MLFLOW_TRACKING_URI", None)
# threads: auto caches its timings per machine; tests never write the user's cache.
os.environ["CNN_LAB_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnn_lab_test_cache_")

import shutil  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # CI has 2 cores; one thread keeps timings steady and runs exact

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_mlflow_run_outlives_its_test():
    """A test stopped mid-run (a timeout, a failed assertion inside a Kedro session) must
    not leave its MLflow run active: every later test in the same worker would log into it
    and fail with "Changing param values is not allowed"."""
    yield
    import sys

    if "mlflow" in sys.modules:
        import mlflow

        while mlflow.active_run() is not None:
            mlflow.end_run("FAILED")
    from cnn_lab.runtime.parallel import MLFLOW_RUN_ID_ENV, PARENT_RUN_ENV

    for name in (MLFLOW_RUN_ID_ENV, PARENT_RUN_ENV):
        os.environ.pop(name, None)


@pytest.fixture
def kedro_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway copy of the project's config in ``tmp_path``, made the working
    directory, so runs write data/ and mlflow.db there and never into the checkout."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    # One torch thread, as the studies' default `auto` would pick on a busy CI machine but
    # not on a quiet one: runs stay exact and comparable (tests/training/test_threads.py
    # covers auto itself). Set in the copy's base env: conf/local is the tests' own.
    for parameters in (project / "conf" / "base").glob("parameters_*.yml"):
        text = parameters.read_text()
        parameters.write_text(re.sub(r"(?m)^  threads: auto\b", "  threads: 1   ", text))
    (project / "src").mkdir()  # cnn_lab itself is imported from the installed package
    (project / "data").mkdir()
    monkeypatch.chdir(project)
    # mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI, which settings.tracking_uri()
    # prefers: without this, a second run in the same process logs to the first project.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project}/mlflow.db")
    return project


def nested(dotted: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, as ``kedro run --params a.b=1`` builds it."""
    from omegaconf import OmegaConf

    conf = OmegaConf.create({})
    for key, value in dotted.items():
        OmegaConf.update(conf, key, value, force_add=True)
    return OmegaConf.to_container(conf)


# Every study maps a t-SNE in its dataset analysis; at the default 300 images that costs
# seconds per run. Pipeline tests map 60 unless they set their own (the analysis itself is
# tested in tests/evaluation/test_dataset_analysis.py).
FAST_ANALYSIS = {"dataset_analysis.subsample": 60, "dataset_analysis.perplexity": 5}


@pytest.fixture
def run_kedro(kedro_project: Path) -> Callable[..., dict[str, Any]]:
    """Run pipelines in-process like ``kedro run --pipelines=... --params=...`` (with the
    small dataset analysis of :data:`FAST_ANALYSIS` unless ``params`` overrides it)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    def run(
        pipelines: list[str],
        params: dict[str, Any] | None = None,
        env: str | None = None,
        **run_kwargs: Any,
    ) -> dict[str, Any]:
        bootstrap_project(kedro_project)
        with KedroSession.create(
            project_path=kedro_project,
            env=env,
            runtime_params=nested({**FAST_ANALYSIS, **(params or {})}),
        ) as session:
            return session.run(pipeline_names=pipelines, **run_kwargs)

    return run


def mlflow_runs(project: Path, experiment: str = "cnn_lab"):
    """All MLflow runs of ``experiment`` recorded in ``project``'s SQLite store."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r} in {project}"
    return client, client.search_runs([exp.experiment_id], max_results=1000)
