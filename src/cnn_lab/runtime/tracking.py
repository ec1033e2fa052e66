"""MLflow helpers for nested runs; kedro-mlflow owns the parent run of each ``kedro run``.

Lineage across a kill (docs/resume.md, "What a kill leaves in MLflow"): each parent run is
tagged with the process that runs it; a later run marks the runs of a process that is gone
KILLED, and takes over the variant runs of a parent that did not finish by re-parenting
them, so the parent of the run that completes a study shows every variant of it.
"""

from __future__ import annotations

import os
import re
import socket
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
            # Its old parent did not finish it (this process holds the variant's lock).
            _adopt(run.info.run_id, parent)
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


PROCESS_TAG = "cnn_lab.process"  # host:pid:start time of the process running a parent run
CLOSED_BY_TAG = "cnn_lab.closed_by"  # on a killed run: the run that marked it KILLED
RESUMED_BY_TAG = "cnn_lab.resumed_by"  # on a parent that did not finish: who took over
PREVIOUS_PARENT_TAG = "cnn_lab.previous_parent"  # on a re-parented variant run
REUSED_TAG_PREFIX = "cnn_lab.reused."  # on a parent: + variant label -> a reused run's id
_PARENT_TAG = "mlflow.parentRunId"
_UNFINISHED = ("KILLED", "FAILED")


def mark_run_process(run_id: str) -> None:
    """Tag ``run_id`` with this process, so that a later run can tell a run whose process
    was killed (its status stuck at RUNNING) from one still going."""
    mlflow.MlflowClient().set_tag(run_id, PROCESS_TAG, _process_identity(os.getpid()))


def close_killed_runs(parent_id: str) -> list[str]:
    """Mark KILLED every RUNNING run of ``parent_id``'s experiment whose process (on this
    host) is gone, with its RUNNING descendants; tag each ``cnn_lab.closed_by``. Returns
    the parent runs closed. Runs of other hosts, or untagged, are left alone: whether
    their process lives cannot be told from here."""
    client = mlflow.MlflowClient()
    experiment = client.get_run(parent_id).info.experiment_id
    running = client.search_runs(
        [experiment], filter_string="attributes.status = 'RUNNING'", max_results=5000
    )
    dead = {
        r.info.run_id
        for r in running
        if r.info.run_id != parent_id and _process_gone(r.data.tags.get(PROCESS_TAG))
    }
    closed = set(dead)
    grown = True
    while grown:  # descendants: variant runs, and runs nested below them
        found = {r.info.run_id for r in running if r.data.tags.get(_PARENT_TAG) in closed}
        grown = not found <= closed
        closed |= found
    for run_id in closed:
        client.set_tag(run_id, CLOSED_BY_TAG, parent_id)
        client.set_terminated(run_id, "KILLED")
    return sorted(dead)


def claim_finished(run_id: str | None, label: str) -> None:
    """Make a reused (finished earlier) variant run findable from this run's parent.

    If its parent did not finish (killed or failed), this run completes that study: the
    variant run is re-parented here. Otherwise its parent is a complete record of its own
    (or still going) and keeps it: this run's parent gets a tag
    ``cnn_lab.reused.<label>`` = its run id.
    """
    if not is_main_process() or run_id is None:  # torchrun: only rank 0 tracks
        return
    parent = current_run_id()
    if parent is None or not _run_exists(run_id):
        return
    old = mlflow.get_run(run_id).data.tags.get(_PARENT_TAG)
    if old == parent:
        return
    if old is not None and _did_not_finish(old):
        _adopt(run_id, parent)
    else:
        mlflow.MlflowClient().set_tag(parent, _reused_tag(label), run_id)


def _adopt(run_id: str, parent: str | None) -> None:
    """Re-parent ``run_id`` under ``parent``, keeping a link both ways: the run names its
    previous parent, which names the run that took over."""
    client = mlflow.MlflowClient()
    old = client.get_run(run_id).data.tags.get(_PARENT_TAG)
    if parent is None or old == parent:
        return
    if old is not None:
        client.set_tag(run_id, PREVIOUS_PARENT_TAG, old)
        if _run_exists(old):
            client.set_tag(old, RESUMED_BY_TAG, parent)
    client.set_tag(run_id, _PARENT_TAG, parent)


def _did_not_finish(run_id: str) -> bool:
    try:
        run = mlflow.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return True  # deleted from the store: nothing to keep the variant run for
    status = run.info.status
    return status in _UNFINISHED or (
        status == "RUNNING" and _process_gone(run.data.tags.get(PROCESS_TAG))
    )


def _reused_tag(label: str) -> str:
    # MLflow tag keys admit letters, digits, "_", "-", ".", " " and "/".
    return REUSED_TAG_PREFIX + re.sub(r"[^\w\-. /]", "_", label)


def _process_identity(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def _process_gone(identity: str | None) -> bool:
    """Whether the process ``identity`` names has ended; False when it cannot be told (no
    tag, another host). The start time tells a reused pid from the original process."""
    if not identity or identity.count(":") < 2:
        return False
    host, pid_text, started = identity.rsplit(":", 2)
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    return bool(started) and _start_time(pid) not in ("", started)


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux); "" elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes().decode(errors="replace")
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces
    return fields[19] if len(fields) > 19 else ""


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
