"""MLflow helpers for nested runs; kedro-mlflow owns the parent run of each ``kedro run``."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from matplotlib.figure import Figure

from cnn_lab.evaluation.figure_png import png_bytes
from cnn_lab.runtime.parallel import exported_parent_run
from cnn_lab.training.callbacks import Callback, EpochState
from cnn_lab.training.ranks import is_main_process


@contextmanager
def child_run(
    name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    *,
    resume_run_id: str | None = None,
    resumed_from_epoch: int = 0,
) -> Iterator[str | None]:
    """A run nested under the parent run of this ``kedro run``, yielding its id; ``None``
    when tracking is off.

    In a worker process (``kedro run --runner=ParallelRunner``) the parent is the run the
    main process exported, made this process's active run too and passed explicitly, so
    every variant nests under the one parent run. A variant resumed from a checkpoint
    continues ``resume_run_id``; if that run is gone (deleted, another tracking store) a
    new run is started, tagged ``resumed_from_epoch``.
    """
    if not is_main_process():  # torchrun: only rank 0 tracks
        yield None
        return
    parent = current_run_id()
    if parent is None:
        yield None
        return
    if resume_run_id is not None and _run_exists(resume_run_id):
        with mlflow.start_run(run_id=resume_run_id, nested=True) as run:
            mlflow.set_tag("resumed_from_epoch", str(resumed_from_epoch))
            yield run.info.run_id
        return
    tags = dict(tags)
    if resumed_from_epoch:
        tags["resumed_from_epoch"] = str(resumed_from_epoch)
    experiment = mlflow.active_run().info.experiment_id  # the parent's (active since above)
    with mlflow.start_run(
        run_name=name, nested=True, parent_run_id=parent, experiment_id=experiment, tags=tags
    ) as run:
        mlflow.log_params({k: _param_value(v) for k, v in params.items()})
        yield run.info.run_id


def current_run_id() -> str | None:
    """The active run; in a worker process without one, the parent run the main process
    exported, made active here (kedro-mlflow opened it in the main process only). None
    when tracking is off."""
    run = mlflow.active_run()
    if run is not None:
        exported_parent_run()  # a forked worker inherits MLFLOW_RUN_ID: drop it
        return run.info.run_id
    parent = exported_parent_run()
    if parent is None:
        return None
    return mlflow.start_run(run_id=parent).info.run_id


def _run_exists(run_id: str) -> bool:
    try:
        return mlflow.get_run(run_id).info.lifecycle_stage == "active"
    except mlflow.exceptions.MlflowException:
        return False


def last_logged_step(run_id: str | None, key: str) -> int:
    """The highest step of metric ``key`` in ``run_id`` (0 when none)."""
    if run_id is None:
        return 0
    history = mlflow.MlflowClient().get_metric_history(run_id, key)
    return max((m.step for m in history), default=0)


def _param_value(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def log_figures(figures: Mapping[str, Figure], folder: str = "figures") -> None:
    if not is_main_process():  # torchrun: only rank 0 tracks
        return
    if current_run_id() is None:
        return
    # The PNG the run's folder and the report also use (rendered once), not
    # mlflow.log_figure's own rendering.
    with tempfile.TemporaryDirectory() as staging:
        for name, figure in figures.items():
            path = Path(staging, f"{name}.png")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png_bytes(figure))
        mlflow.log_artifacts(staging, artifact_path=folder)


def log_table(table: Any, artifact_file: str) -> None:
    """A pandas table as a CSV artifact of the active run."""
    if not is_main_process():  # torchrun: only rank 0 tracks
        return
    if current_run_id() is None:
        return
    mlflow.log_text(table.to_csv(index=False), artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    if not is_main_process():  # torchrun: only rank 0 tracks
        return
    if current_run_id() is None:
        return
    mlflow.log_text(text, artifact_file)


def log_dict(data: Mapping[str, Any], artifact_file: str) -> None:
    """A dictionary as a JSON (or YAML, by the file's suffix) artifact of the active run."""
    if is_main_process() and mlflow.active_run() is not None:
        mlflow.log_dict(dict(data), artifact_file)


def active_run_id() -> str | None:
    """The run kedro-mlflow opened for this ``kedro run`` (the parent of variant runs)."""
    return current_run_id()


def log_variant(
    metrics: Mapping[str, Any],
    performance: Mapping[str, Any],
    figures: Mapping[str, Figure],
    *,
    status: str,
    diverged_epoch: int | None = None,
) -> None:
    """A finished variant's results in its active nested run: metrics, the performance
    choices that ran (params), its figures, and a ``status`` tag (ok / diverged, with the
    epoch) so MLflow's run list shows which variants blew up and when."""
    if not is_main_process() or mlflow.active_run() is None:
        return
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
    mlflow.log_params({k: _param_value(v) for k, v in performance.items()})
    mlflow.set_tag("status", status)
    if diverged_epoch is not None:
        mlflow.set_tag("diverged_epoch", str(diverged_epoch))
    if figures:
        log_figures(figures)


def log_metrics(metrics: Mapping[str, float]) -> None:
    """Metrics of the active run (a study's parent run, or a variant's nested run)."""
    if is_main_process() and mlflow.active_run() is not None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})


class MlflowMetrics(Callback):
    """Logs every epoch's metrics to the active MLflow run with ``step`` = epoch.

    ``logged_through``: epochs a resumed run had already logged (killed between logging
    and checkpointing); they are not logged twice, so metric histories have no duplicates.
    """

    def __init__(self, logged_through: int = 0) -> None:
        self.logged_through = logged_through

    def on_epoch_end(self, state: EpochState) -> None:
        if not is_main_process():  # torchrun: rank 0 tracks
            return
        if mlflow.active_run() is not None and state.epoch > self.logged_through:
            mlflow.log_metrics(dict(state.metrics), step=state.epoch)


def log_history(epochs: list[dict[str, float]], logged_through: int) -> None:
    """Epochs after ``logged_through`` of a resumed variant's history, into a new run that
    replaces a lost one, so its metric histories have no gap before the resume."""
    for epoch, row in enumerate(epochs, start=1):
        if epoch > logged_through:
            mlflow.log_metrics(dict(row), step=epoch)


def set_tags(tags: Mapping[str, str]) -> None:
    """Tags of the active run (a variant's status, a search trial's fate)."""
    if is_main_process() and mlflow.active_run() is not None:
        mlflow.set_tags(dict(tags))


def log_to_run(run_id: str | None, metrics: Mapping[str, float]) -> None:
    """Metrics of another, finished run: scores a later node measures for a variant (its
    test set, its CAM localisation); a no-op without tracking or a run id."""
    if run_id is not None and is_main_process() and current_run_id() is not None:
        client = mlflow.MlflowClient()
        for key, value in metrics.items():
            client.log_metric(run_id, key, float(value))


def tag_run(run_id: str | None, tags: Mapping[str, Any]) -> None:
    """Tags of the run ``run_id`` (none when tracking is off), active or finished."""
    if run_id is None or not is_main_process():
        return
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, str(value))
