"""MLflow helpers for nested runs; kedro-mlflow owns the parent run of each ``kedro run``.

Lineage across a kill (docs/resume.md, "What a kill leaves in MLflow"): each parent run is
tagged with the process that runs it; a later run marks the runs of a process that is gone
KILLED, and takes over the variant runs of a parent that did not finish by re-parenting
them, so the parent of the run that completes a study shows every variant of it.
"""

from __future__ import annotations

import math
import os
import re
import socket
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
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


MODEL_FOLDER = "model"  # a variant run's artifacts: model.pt, build_spec.json, inputs.json
MODEL_FILE = "model.pt"
REGISTERED_PREFIX = "cnn_lab."  # registered model of a study: cnn_lab.<study>
# On a study's parent run (one per study: a run may hold several): models:/<name>/<v>
REGISTERED_TAG = "cnn_lab.registered_model."  # + study
# What picks a study run's best variant, the first a result has: the score of the weights
# that were saved (init_study scores every epoch; its last one is what the weights give).
HEADLINE_METRICS = ("test_accuracy", "final_test_accuracy")


def log_model(run_id: str | None, model: Any, inputs: Mapping[str, Any]) -> bool:
    """Log ``model``'s weights to the variant run ``run_id`` as ``model/``: ``model.pt``
    (its build spec and state dict in the catalog's ModelDataset format, read back with
    ``torch.load(weights_only=True)``: no pickle, no code), ``build_spec.json`` and
    ``inputs.json`` (what the network takes: shape, resize, normalisation, class names).

    Once per run: a resumed run, or a reused one whose run got no weights when it
    finished (trained before weights were logged), gets them here; a run that has them
    is left alone. False when nothing was logged (tracking off, no run, already there,
    a network without a build spec)."""
    if run_id is None or not is_main_process() or current_run_id() is None:
        return False
    if not _run_exists(run_id) or _has_model(run_id):
        return False
    spec = getattr(model, "build_spec", None)
    if not isinstance(spec, Mapping):
        return False  # not built by build_model: nothing could rebuild it
    import json

    import torch

    from cnn_lab.runtime.datasets import to_torch_tree

    with tempfile.TemporaryDirectory() as staging:
        torch.save(to_torch_tree(model), Path(staging, MODEL_FILE))
        Path(staging, "build_spec.json").write_text(json.dumps(spec, indent=2))
        Path(staging, "inputs.json").write_text(json.dumps(dict(inputs), indent=2))
        mlflow.MlflowClient().log_artifacts(run_id, staging, MODEL_FOLDER)
    return True


def _has_model(run_id: str) -> bool:
    listed = mlflow.MlflowClient().list_artifacts(run_id, MODEL_FOLDER)
    return any(a.path == f"{MODEL_FOLDER}/{MODEL_FILE}" for a in listed)


def register_best(study: str, results: Iterable[Mapping[str, Any]]) -> str | None:
    """Register the best variant of this study run (by the first of
    :data:`HEADLINE_METRICS` its results have, among those whose run holds weights) as a
    new version of ``cnn_lab.<study>``: its source is the variant run's ``model/``, its
    tags the variant's numeric results (the summary row) and which run it came from.
    Returns ``models:/<name>/<version>``, also tagged on the study's parent run; None when
    tracking is off or no variant has a finite score and weights."""
    if not is_main_process():  # torchrun: only rank 0 tracks
        return None
    parent = current_run_id()
    if parent is None:
        return None
    scored = [r for r in results if isinstance(r, Mapping) and r.get("mlflow_run_id")]
    metric = next((m for m in HEADLINE_METRICS if any(_finite(r.get(m)) for r in scored)), None)
    if metric is None:
        return None
    ranked = sorted(
        (r for r in scored if _finite(r.get(metric))), key=lambda r: -float(r[metric])
    )  # stable: among equal scores the first variant wins, as max() picks it
    best = next(
        (r for r in ranked if _run_exists(r["mlflow_run_id"]) and _has_model(r["mlflow_run_id"])),
        None,
    )
    if best is None:
        return None
    client = mlflow.MlflowClient()
    name = REGISTERED_PREFIX + study
    run_id = best["mlflow_run_id"]
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(
            name,
            description=f"The best variant of each {study} run (load: "
            "cnn_lab.runtime.tracking.load_registered).",
        )
    numbers = {k: v for k, v in best.items() if _finite(v) and k != "mlflow_run_id"}
    tags = {
        **{k: str(v) for k, v in numbers.items()},
        "cnn_lab.study": study,
        "cnn_lab.selected_by": metric,
        "cnn_lab.study_run": parent,
        "cnn_lab.variants_compared": str(len(ranked)),
    }
    label = best.get("variant") or best.get("model") or best.get("run")
    if label is not None:
        tags["cnn_lab.variant"] = str(label)
    source = f"{client.get_run(run_id).info.artifact_uri}/{MODEL_FOLDER}"
    version = client.create_model_version(
        name,
        source,
        run_id=run_id,
        tags=tags,
        description=f"best of {len(ranked)} by {metric} ({best[metric]:.4f}) in run {parent}",
    )
    uri = f"models:/{name}/{version.version}"
    client.set_tag(parent, REGISTERED_TAG + study, uri)
    return uri


def _finite(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


@dataclass
class RegisteredModel:
    """A registered model version, loaded: the network (on the CPU, in eval mode), what it
    takes (``inputs.json``: in_shape, input_size, normalisation, class_names), and the
    version's number, source run and tags (the variant's results)."""

    model: Any
    inputs: dict[str, Any]
    name: str
    version: str
    run_id: str | None
    tags: dict[str, str]


def load_registered(
    name: str, version: str | int = "latest", *, tracking_uri: str | None = None
) -> RegisteredModel:
    """The network registered as ``name`` (e.g. ``cnn_lab.cnn_depth``, or a
    ``models:/<name>/<version>`` URI) at ``version`` (a number or ``latest``), rebuilt
    from its build spec and loaded with ``torch.load(weights_only=True)``.
    ``tracking_uri``: the store (default: ``MLFLOW_TRACKING_URI``, else the project's
    ``mlflow.db``)."""
    import json

    import torch

    from cnn_lab.runtime.datasets import from_torch_tree
    from cnn_lab.runtime.project import tracking_uri as project_uri

    if name.startswith("models:/"):  # the URI MLflow's UI shows: models:/<name>/<version>
        name, _, version = name.removeprefix("models:/").partition("/")
        version = version or "latest"
    uri = tracking_uri or project_uri()
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = _model_version(client, name, str(version), uri)
    with tempfile.TemporaryDirectory() as staging:
        folder = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=found.source, dst_path=staging, tracking_uri=uri
            )
        )
        weights = folder / MODEL_FILE
        if not weights.is_file():
            raise FileNotFoundError(
                f"version {found.version} of {name!r} has no {MODEL_FILE} in {found.source}: "
                "it was not registered by a cnn_lab study run (load it with MLflow's own "
                "loaders), or its run's artifacts were deleted (rerun the study)"
            )
        model = from_torch_tree(torch.load(weights, map_location="cpu", weights_only=True))
        inputs_file = folder / "inputs.json"
        inputs = json.loads(inputs_file.read_text()) if inputs_file.is_file() else {}
    return RegisteredModel(
        model.eval(), inputs, name, str(found.version), found.run_id, dict(found.tags)
    )


def _model_version(client: Any, name: str, version: str, uri: str) -> Any:
    """The ModelVersion ``version`` (``latest``: the highest number) of ``name``, or an
    error that names what is registered in the store at ``uri``."""
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        known = sorted(m.name for m in client.search_registered_models(max_results=1000))
        raise LookupError(
            f"no registered model {name!r} in the MLflow store {uri}; registered: "
            f"{', '.join(known) or 'none'}. A study run registers its best variant as "
            f"{REGISTERED_PREFIX}<study> (e.g. kedro run --pipelines cnn_depth); "
            "MLFLOW_TRACKING_URI or tracking_uri= names another store"
        ) from None
    versions = client.search_model_versions(f"name = '{name}'", max_results=1000)
    if version == "latest":
        if not versions:
            raise LookupError(f"registered model {name!r} has no versions in {uri}")
        return max(versions, key=lambda v: int(v.version))
    match = [v for v in versions if str(v.version) == version]
    if not match:
        numbers = ", ".join(sorted((str(v.version) for v in versions), key=int)) or "none"
        raise LookupError(
            f"registered model {name!r} has no version {version!r}; versions: {numbers} "
            "(or 'latest')"
        )
    return match[0]
