"""What a ``kedro run`` prints: third-party noise filtered out, Rich markup only where
Kedro wrote it. Installed from settings.py, which Kedro imports before it loads its
plugins' commands (kedro-mlflow's import of MLflow raises the first warning)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from cnn_lab.training.ranks import is_main_process

# Third-party warnings this project cannot act on, matched narrowly by their text:
# OmegaConf's deprecation of the resolver API that Kedro and kedro-mlflow call, MLflow's
# advice to its own PythonModel subclasses (raised when kedro-mlflow imports them), and
# Kedro's advice against dots in dataset names (its own namespaces produce them).
KNOWN_NOISE = (
    "register_new_resolver() is deprecated",
    "Add type hints to the `predict` method",
    "dataset names contain '.' characters",
)


class KnownNoise(logging.Filter):
    """Drops the warnings listed in :data:`KNOWN_NOISE`; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in KNOWN_NOISE)


def _plain_unless_kedro(factory: logging.LogRecordFactory) -> logging.LogRecordFactory:
    """Records of every logger but Kedro's (and its plugins') are marked plain: Rich then
    prints this project's ``[study.variant]`` labels as written instead of parsing them as
    markup, while Kedro's coloured dataset names render in a terminal and lose their tags
    in a piped log (conf/logging.yml turns markup on)."""

    def make(name: str, *args, **kwargs) -> logging.LogRecord:
        record = factory(name, *args, **kwargs)
        if not name.startswith("kedro"):
            record.markup = False
        return record

    make.plain_unless_kedro = True  # type: ignore[attr-defined]
    return make


def install() -> None:
    """Idempotent: once per process, whatever reconfigures logging afterwards (filters on
    the ``py.warnings`` logger and the record factory survive Kedro's dictConfig calls)."""
    warnings_logger = logging.getLogger("py.warnings")
    if not any(isinstance(f, KnownNoise) for f in warnings_logger.filters):
        warnings_logger.addFilter(KnownNoise())
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "plain_unless_kedro", False):
        logging.setLogRecordFactory(_plain_unless_kedro(factory))


def closing_block(
    study: str,
    report: str | None,
    summary: Any,
    run_id: str | None,
    experiment_id: str | None,
    *,
    rows: int = 3,
) -> list[str]:
    """The lines that end a run of ``study``: where its report is, the summary's best rows
    by test accuracy, and the MLflow run with the command that opens it."""
    lines = [f"== {study} =="]
    if report:
        lines.append(f"report: {report}")
    from cnn_lab.evaluation.report import headline

    table = headline(summary) if summary is not None and len(summary) else None
    if table is not None:
        lines.append(f"best of {len(table)} by test accuracy (the report's results table):")
        name = table.columns[0]
        lines += [
            f"  {row[name]}: {row['test accuracy']}" for _, row in table.head(rows).iterrows()
        ]
    if run_id:
        lines.append(
            f"MLflow run {run_id}: `kedro mlflow ui`, then "
            f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}"
        )
    return lines


def _saved_path(catalog: Any, name: str) -> Path | None:
    """Where this run saved dataset ``name`` (its own version, not the latest on disk)."""
    try:
        dataset = catalog.get(name)
        # Kedro's public API resolves the latest version on disk, which may be another
        # run's: ask for this run's save version instead.
        return Path(dataset._get_versioned_path(dataset.resolve_save_version()))
    except Exception:  # not in the catalog, not versioned, or not saved by this run
        return None


# Set to 1 for the full traceback of an expected error too.
TRACEBACK_ENV = "CNN_LAB_TRACEBACK"
# The project's own errors: each carries a message that names what to fix.
_EXPECTED = {"ParameterError", "TrackingStoreError", "WeightsUnavailableError", "ArtworksDataError"}
_PACKAGE = Path(__file__).resolve().parent
_reported: set[int] = set()  # errors Kedro has already logged with their message


def is_expected(error: BaseException) -> bool:
    """An error this project raises on purpose: one of its own types, or a missing file or
    bad value raised by its data sources (whose messages name the parameter to fix)."""
    if {kind.__name__ for kind in type(error).__mro__} & _EXPECTED:
        return True
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    origin = Path(frames[-1]).resolve() if frames else None
    from_data = origin is not None and origin.is_relative_to(_PACKAGE / "data")
    return from_data and isinstance(error, (FileNotFoundError, ValueError))


def short_error(error: BaseException) -> str:
    """What ``cnn-lab``/``kedro run`` prints for an expected error instead of a traceback:
    the message once (Kedro's log already holds it when a node raised it)."""
    hint = f"(set {TRACEBACK_ENV}=1 for the traceback)"
    if id(error) in _reported:
        return f"Stopped: {type(error).__name__}, as logged above {hint}"
    return f"Stopped: {type(error).__name__}: {error}\n{hint}"


def _excepthook(previous):
    def hook(kind, error, tb):
        if os.environ.get(TRACEBACK_ENV) or not is_expected(error):
            previous(kind, error, tb)
        else:
            print(short_error(error), file=sys.stderr)

    hook.short_errors = True
    return hook


class RunPresentation:
    """The MLflow parent run named after the studies and the env, its experiment marked
    as model training (MLflow 3's UI otherwise opens a GenAI overview), and a closing
    block printed after the run: report, best rows, MLflow run."""

    @hook_impl
    def after_context_created(self) -> None:
        # Here, not at import: Kedro's logging set-up installs Rich's traceback hook first.
        if not getattr(sys.excepthook, "short_errors", False):
            sys.excepthook = _excepthook(sys.excepthook)

    @hook_impl
    def on_node_error(self, error: BaseException) -> None:
        _reported.add(id(error))

    @hook_impl(trylast=True)  # after kedro-mlflow opened the parent run
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        import mlflow

        run = mlflow.active_run()
        if run is None or not is_main_process():
            return
        studies = run_params.get("pipeline_names") or ["__default__"]
        env = run_params.get("env") or "local"
        mlflow.set_tag("mlflow.runName", f"{'+'.join(studies)} ({env})")
        mlflow.MlflowClient().set_experiment_tag(
            run.info.experiment_id, "mlflow.experimentKind", "custom_model_development"
        )

    @hook_impl(tryfirst=True)  # before kedro-mlflow closes the parent run
    def after_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        import mlflow
        import pandas as pd

        if not is_main_process():
            return
        run = mlflow.active_run()
        reports = sorted(n for n in pipeline.all_outputs() if n.endswith(".report.html"))
        for name in reports:
            study = name.removesuffix(".report.html")
            report = _saved_path(catalog, name)
            summary_path = _saved_path(catalog, f"{study}.summary")
            summary = pd.read_csv(summary_path) if summary_path and summary_path.is_file() else None
            lines = closing_block(
                study,
                str(report.resolve()) if report and report.is_file() else None,
                summary,
                run.info.run_id if run else None,
                run.info.experiment_id if run else None,
            )
            print("\n".join(lines), flush=True)
