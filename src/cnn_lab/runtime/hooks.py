"""Project hooks.

Studies generate one namespaced modular pipeline per variant from their parameter grid,
so pipelines must be built from the parameters of *this* run (env and ``--params``
included). Kedro builds pipelines without parameters; this hook hands them over.
"""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

from cnn_lab.training.ranks import is_main_process

_run_parameters: dict[str, Any] | None = None
_runtime_parameters: dict[str, Any] = {}
_run_env: str | None = None
_run_context: Any = None


def run_parameters() -> dict[str, Any]:
    """Parameters of the current run; outside a Kedro session, those of conf/base+local."""
    if _run_parameters is not None:
        return _run_parameters
    from kedro.config import OmegaConfigLoader

    from cnn_lab.runtime.project import CONFIG_LOADER_ARGS, find_project_root

    loader = OmegaConfigLoader(conf_source=str(find_project_root() / "conf"), **CONFIG_LOADER_ARGS)
    return dict(loader["parameters"])


def runtime_parameters() -> dict[str, Any]:
    """The ``--params`` of the current run (nested), {} outside a run or in a spawned
    worker: what a study checks to tell a command-line override from a configured value."""
    return _runtime_parameters


def run_env() -> str:
    """The config env of the current run (``local`` layered on ``base`` unless ``--env``);
    in a spawned worker process, the env its main process exported."""
    import os

    from cnn_lab.runtime.parallel import RUN_ENV_ENV

    return _run_env or os.environ.get(RUN_ENV_ENV) or "local"


def default_parameters(study: str) -> dict[str, Any]:
    """The study's parameters as conf/base defines them: what a report diffs a run against."""
    from omegaconf import OmegaConf

    from cnn_lab.runtime.project import find_project_root

    path = find_project_root() / "conf" / "base" / f"parameters_{study}.yml"
    if not path.is_file():
        return {}
    loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return dict(loaded.get(study) or {}) if isinstance(loaded, dict) else {}


class TrackingStoreCheck:
    """Fails the run before anything trains when the MLflow store is unreachable, and
    creates or upgrades a SQLite store under ``mlflow.db.lock`` (tracking_check.py).

    ``tryfirst``: kedro-mlflow's own hook would otherwise retry for minutes, then fail
    with a message that does not say which setting to fix.
    """

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        if not is_main_process():  # torchrun: only rank 0 tracks
            return
        from cnn_lab.runtime.tracking_check import check_tracking_store

        check_tracking_store(_configured_uri(context))


class RunIsolation:
    """Keeps a run to its own files, its secrets out of MLflow (runtime/isolation.py), and
    its MLflow lineage apart from a killed run's (runtime/tracking.py).

    ``before_pipeline_run`` is ``tryfirst`` so that kedro-mlflow, which records
    ``run_params`` as tags of the parent run, sees ``runtime_params`` already redacted;
    ``close_killed_runs`` is ``trylast``: it needs the parent run kedro-mlflow opens.
    """

    def __init__(self) -> None:
        self._catalogs: dict[int, tuple[str, dict[str, str]]] = {}

    @hook_impl
    def after_catalog_created(
        self, catalog: Any, save_version: str, load_versions: dict[str, str] | None
    ) -> None:
        self._catalogs[id(catalog)] = (save_version, dict(load_versions or {}))

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        import logging

        from cnn_lab.runtime.isolation import (
            check_read_versions,
            pin_run_versions,
            redact_credentials,
        )

        if run_params.get("runtime_params"):
            run_params["runtime_params"] = redact_credentials(run_params["runtime_params"])
        # Kedro saves a run's versioned datasets under its session id, the run_id here.
        save_version, explicit = self._catalogs.pop(
            id(catalog), (run_params.get("run_id"), run_params.get("load_versions") or {})
        )
        if save_version:
            pinned = pin_run_versions(catalog, pipeline, save_version, explicit)
            logging.getLogger(__name__).debug("loading this run's %s of %s", save_version, pinned)
        check_read_versions(catalog, pipeline, lambda: _registered(run_params), explicit)

    # pluggy takes one implementation per method name: this one runs last, not first.
    @hook_impl(specname="before_pipeline_run", trylast=True)
    def close_killed_runs(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Tag this run's parent with its process, and mark KILLED the runs that a killed
        ``kedro run`` left RUNNING, so MLflow shows which run is really going."""
        if not is_main_process():  # torchrun: only rank 0 tracks
            return
        import logging

        import mlflow

        from cnn_lab.runtime import tracking

        run = mlflow.active_run()
        if run is None:  # tracking off for this pipeline
            return
        tracking.mark_run_process(run.info.run_id)
        closed = tracking.close_killed_runs(run.info.run_id)
        if closed:
            logging.getLogger(__name__).info(
                "MLflow: marked KILLED the run(s) %s, whose process is gone (killed)",
                ", ".join(closed),
            )


def _registered(run_params: dict[str, Any]) -> Any:
    """The whole of the pipelines this run was asked for, before ``--from-nodes`` and the
    like cut it down: what tells which dataset is made from which."""
    from kedro.framework.project import pipelines
    from kedro.pipeline import Pipeline

    names = run_params.get("pipeline_names") or ["__default__"]
    try:
        return sum((pipelines[name] for name in names), Pipeline([]))
    except KeyError:  # not a registered name (a test's own pipeline): nothing to compare
        return Pipeline([])


def _configured_uri(context: Any) -> str:
    """The URI kedro-mlflow will use: mlflow.yml's, else the environment's or ours."""
    import os

    from cnn_lab.runtime.project import tracking_uri

    try:
        patterns = context.config_loader.config_patterns
        if "mlflow" not in patterns:
            patterns.update({"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"]})
        uri = (context.config_loader["mlflow"].get("server") or {}).get("mlflow_tracking_uri")
    except Exception:  # no mlflow.yml: kedro-mlflow falls back to its defaults
        uri = None
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or tracking_uri()


def _read_run_parameters(context: Any) -> dict[str, Any]:
    """This run's parameters (env and ``--params`` included), read once per context.

    Read from the config loader, not ``context.params``: that property validates the
    parameters against every registered pipeline, which builds every study's pipelines
    (with parameters not yet known) only to throw them away: 0.5-1 s of start-up.
    """
    global _run_parameters, _runtime_parameters, _run_env, _run_context
    if _run_context is not context:
        _run_parameters = dict(context.config_loader["parameters"])
        _runtime_parameters = dict(getattr(context.config_loader, "runtime_params", None) or {})
        _run_env = context.env
        _run_context = context
    assert _run_parameters is not None
    return _run_parameters


class StudyGridHook:
    @hook_impl
    def after_context_created(self, context: Any) -> None:
        _read_run_parameters(context)
        # Rebuild pipelines from these parameters even if something listed them earlier.
        # configure() also forgets which pipelines `kedro run --pipelines` asked for, and
        # would then build (and import) every study: ask for the same ones again.
        from kedro.framework.project import PACKAGE_NAME, pipelines

        requested = getattr(pipelines, "_requested_pipelines", None)
        pipelines.configure(f"{PACKAGE_NAME}.pipeline_registry")
        if requested is not None:
            pipelines.set_requested(requested)

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        """A study whose parameters file is empty or gone still gets ``params:<study>``
        (None), so its validation node runs and says what is missing instead of Kedro
        refusing the whole pipeline for a missing input."""
        for study in _study_names():
            if f"params:{study}" not in catalog:
                catalog[f"params:{study}"] = None


class ModelRegistry:
    """Registers the best variant of each study run in MLflow's Model Registry as a new
    version of ``cnn_lab.<study>`` (runtime/tracking.py ``register_best``), from the
    results its ``<study>.summarise`` node reads: every study's frame has that node, so
    no study registers anything itself.

    A registry that refuses (a store without one) is a warning, not a failed run: the
    results and weights are saved by then, and the variant runs hold the weights."""

    @hook_impl
    def after_node_run(self, node: Any, inputs: dict[str, Any]) -> None:
        study = node.name.removesuffix(".summarise")
        if study == node.name or study not in _study_names():
            return
        import logging

        import mlflow

        from cnn_lab.runtime import tracking

        logger = logging.getLogger(__name__)
        try:
            uri = tracking.register_best(study, [v for v in inputs.values() if isinstance(v, dict)])
        except mlflow.exceptions.MlflowException as error:
            logger.warning(
                "MLflow: could not register the best %s variant (%s); its run still holds "
                "the weights under model/",
                study,
                error.message,
            )
            return
        if uri is not None:
            logger.info("MLflow: registered the best %s variant as %s", study, uri)


def _study_names() -> list[str]:
    import pkgutil

    import cnn_lab.pipelines

    return [m.name for m in pkgutil.iter_modules(cnn_lab.pipelines.__path__) if m.ispkg]


class WorkerProcesses:
    """What ``kedro run --runner=ParallelRunner`` workers need from the main process.

    Workers inherit the main process's environment, forked or spawned, and Kedro 1.7
    runs no project hook in a spawned worker (only plugins' hooks). So the main process
    exports the config env, ``parallel.devices`` and the MLflow run kedro-mlflow opened:
    ``child_run`` nests variant runs under it explicitly, and ``MLFLOW_RUN_ID`` makes any
    MLflow call in a worker that would open a run of its own (kedro-mlflow logging a
    node's parameters in a spawned worker does) continue this run instead.
    """

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        import os

        from cnn_lab.runtime.parallel import RUN_ENV_ENV, export_devices, parse_parallel

        export_devices(parse_parallel(_read_run_parameters(context).get("parallel")))
        os.environ[RUN_ENV_ENV] = context.env or "local"

    @hook_impl(trylast=True)  # after kedro-mlflow has opened the parent run
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        import mlflow
        from kedro.io import SharedMemoryDataCatalog

        from cnn_lab.runtime.parallel import export_parent_run

        run = mlflow.active_run()
        export_parent_run(
            run.info.run_id if run else None,
            mlflow.get_tracking_uri(),
            # Kedro gives ParallelRunner, and only it, this catalog: nodes run in workers.
            workers=isinstance(catalog, SharedMemoryDataCatalog),
        )

    @hook_impl
    def after_pipeline_run(self) -> None:
        from cnn_lab.runtime.parallel import export_parent_run

        export_parent_run(None)

    @hook_impl
    def on_pipeline_error(self) -> None:
        from cnn_lab.runtime.parallel import export_parent_run

        export_parent_run(None)
