"""What a ``kedro run`` prints: third-party noise filtered out, Rich markup only where
Kedro wrote it. Installed from settings.py, which Kedro imports before it loads its
plugins' commands (kedro-mlflow's import of MLflow raises the first warning)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kedro.framework.hooks import hook_impl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cnn_lab.training.ranks import is_main_process

if TYPE_CHECKING:  # the callbacks module imports torch: not on every kedro command
    from cnn_lab.training.callbacks import EpochProgress

# Third-party warnings this project cannot act on, matched narrowly by their text:
# OmegaConf's deprecation of the resolver API that Kedro and kedro-mlflow call, MLflow's
# advice to its own PythonModel subclasses (raised when kedro-mlflow imports them), and
# Kedro's advice against dots in dataset names (its own namespaces produce them), and
# FastAPI's deprecation of a response class kedro-viz uses (ten lines on every start).
KNOWN_NOISE = (
    "register_new_resolver() is deprecated",
    "Add type hints to the `predict` method",
    "dataset names contain '.' characters",
    "ORJSONResponse is deprecated",
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


class LiveProgress(logging.Filter):
    """A terminal's view of training: one bar for the run's variants, one for the epochs
    of the variant training now. Fed by ProgressLog's records, which it holds back from
    the console handler it filters (the bars show them; other handlers still get them).
    """

    def __init__(self, console: Console, variants: int, title: str) -> None:
        super().__init__()
        # A forked worker inherits this filter but not the display: it lets records pass.
        self._pid = os.getpid()
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}", markup=False),
            TimeElapsedColumn(),
            console=console,
            transient=True,  # the variants' outcome lines stay; the bars go
        )
        self.variants = self.progress.add_task(title, total=variants, stats="variants")
        self.epochs = self.progress.add_task("", total=None, stats="", visible=False)

    def start(self) -> None:
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def variant_started(self, name: str) -> None:
        self.progress.reset(self.epochs, total=None, description=f"[{name}]", stats="")
        self.progress.update(self.epochs, visible=True)

    def variant_done(self) -> None:
        self.progress.advance(self.variants)

    def show(self, epoch: EpochProgress) -> None:
        self.progress.update(
            self.epochs,
            description=f"[{epoch.label}]",
            completed=epoch.epoch,
            total=epoch.epochs,
            stats=epoch.stats(),
            visible=True,
        )

    def filter(self, record: logging.LogRecord) -> bool:
        epoch = getattr(record, "epoch_progress", None)
        if epoch is None or os.getpid() != self._pid:
            return True
        self.show(epoch)
        return False


def is_variant(node: Any) -> bool:
    """A study variant's training node (``cnn_depth.mlp.mlp_d8.train``)."""
    return bool(node.namespace) and node.name.rsplit(".", 1)[-1] == "train"


def _console_handlers() -> list[logging.Handler]:
    """The root logger's Rich handlers (Kedro's logging.yml installs one)."""
    from rich.logging import RichHandler

    return [h for h in logging.getLogger().handlers if isinstance(h, RichHandler)]


def live_progress(pipeline: Any, run_params: dict[str, Any]) -> LiveProgress | None:
    """A started :class:`LiveProgress` on the console Kedro logs to, when that console is
    a terminal and this process runs the nodes; None otherwise (epoch lines are printed)."""
    handlers = _console_handlers()
    if not handlers or not is_main_process():
        return None
    if "ParallelRunner" in str(run_params.get("runner")):  # nodes run in other processes
        return None
    console = handlers[0].console  # type: ignore[attr-defined]
    if not console.is_terminal:
        return None
    variants = [n for n in pipeline.nodes if is_variant(n)]
    studies = sorted({n.namespace.split(".")[0] for n in variants}) or ["run"]
    live = LiveProgress(console, len(variants), "+".join(studies))
    for handler in handlers:
        handler.addFilter(live)
    live.start()
    return live


def _end_live(live: LiveProgress | None) -> None:
    if live is not None:
        live.stop()
        for handler in _console_handlers():
            handler.removeFilter(live)


def closing_block(
    study: str,
    report: str | None,
    summary: Any,
    run_id: str | None,
    experiment_id: str | None,
    *,
    rows: int = 3,
    view: str | None = None,
    claims: Any = None,
) -> list[str]:
    """The lines that end a run of ``study``: where its report is, the summary's best rows
    by test accuracy, the lab's claims with their verdicts (``claims``: the run's claims
    table), and the MLflow run with the command that opens it."""
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
    if claims is not None and len(claims):
        lines.append("the lab's claims (the report's claims table):")
        lines += [f"  {row['verdict']}: {row['claim']}" for _, row in claims.iterrows()]
    if run_id:
        lines.append(
            f"MLflow run {run_id}: `kedro mlflow ui`, then "
            f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}"
        )
    if view:
        lines.append(f"runs table with the study's columns: {view}")
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


# What the runs table shows per study: the variant runs' parameters that tell variants
# apart, and these test metrics (the summary's names, which the runs carry too).
KEY_METRICS = ("test_accuracy", "test_loss", "train_seconds")
VIEW_TAG = "cnn_lab.view."  # + study: that study's line of the experiment description
SHARED_VIEW_TAG = "mlflow.sharedViewState."  # + key: a runs-table view MLflow's UI opens


def key_columns(summary: Any, params: set[str], metrics: set[str]) -> tuple[list, list]:
    """The summary's columns a variant run carries: parameters that vary across the
    variants (and the model size), and the test metrics, in the summary's order."""
    varying = [c for c in summary.columns if c in params and summary[c].nunique() > 1]
    if "parameters" in params and "parameters" not in varying:
        varying.append("parameters")
    return varying, [m for m in KEY_METRICS if m in metrics]


def table_view(params: list[str], metrics: list[str], parent: str | None) -> dict[str, Any]:
    """MLflow's runs-table state for these columns, best test accuracy first, the parent
    run's variants unfolded: the JSON its UI keeps under a share key."""
    view: dict[str, Any] = {
        "selectedColumns": [f"params.`{p}`" for p in params] + [f"metrics.`{m}`" for m in metrics]
    }
    if "test_accuracy" in metrics:
        view.update(orderByKey="metrics.`test_accuracy`", orderByAsc=False)
    if parent:
        view["runsExpanded"] = {parent: True}
    return view


def view_url(experiment_id: str, key: str) -> str:
    return f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?viewStateShareKey={key}"


def experiment_note(lines: dict[str, str]) -> str:
    """The experiment's description (MLflow shows it above the runs table): how runs are
    named and, per study, which columns to show; MLflow keeps column choices per browser."""
    text = [
        "Model training runs of cnn-lab: one parent run per `kedro run`, named "
        "`<study> (<env>)`, with one nested run per variant, named after it.",
        "",
        "Columns worth showing (Columns menu), or open each study's saved view:",
    ]
    return "\n".join(text + [f"- {lines[study]}" for study in sorted(lines)])


def present_columns(client: Any, experiment_id: str, study: str, summary: Any, parent: str):
    """Saves the study's runs-table view on the experiment and names its columns in the
    experiment's description; returns the view's address."""
    runs = [r for r in summary.get("mlflow_run_id", []) if isinstance(r, str) and r]
    if not runs:
        return None
    data = client.get_run(runs[0]).data
    params, metrics = key_columns(summary, set(data.params), set(data.metrics))
    view = table_view(params, metrics, parent)
    client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + study, json.dumps(view))
    url = view_url(experiment_id, study)
    line = f"{study}: params {', '.join(params)}; metrics {', '.join(metrics)} ({url})"
    client.set_experiment_tag(experiment_id, VIEW_TAG + study, line)
    tags = client.get_experiment(experiment_id).tags
    lines = {k.removeprefix(VIEW_TAG): v for k, v in tags.items() if k.startswith(VIEW_TAG)}
    client.set_experiment_tag(experiment_id, "mlflow.note.content", experiment_note(lines))
    return url


class RunPresentation:
    """A live progress display in a terminal; the MLflow parent run named after the studies
    and the env, its experiment marked as model training (MLflow 3's UI otherwise opens a
    GenAI overview) with a runs-table view per study; a closing block after the run:
    report, best rows, MLflow run."""

    def __init__(self) -> None:
        self._live: LiveProgress | None = None

    @hook_impl
    def after_context_created(self) -> None:
        # Here, not at import: Kedro's logging set-up installs Rich's traceback hook first.
        if not getattr(sys.excepthook, "short_errors", False):
            sys.excepthook = _excepthook(sys.excepthook)

    @hook_impl
    def on_node_error(self, error: BaseException) -> None:
        _reported.add(id(error))

    @hook_impl(trylast=True)  # after kedro-mlflow opened the parent run
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any) -> None:
        self._live = live_progress(pipeline, run_params)
        self._name_run(run_params)

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        if self._live is not None and is_variant(node):
            self._live.variant_started(node.namespace)

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        if self._live is not None and is_variant(node):
            self._live.variant_done()

    @hook_impl
    def on_pipeline_error(self) -> None:
        _end_live(self._live)
        self._live = None

    @staticmethod
    def _name_run(run_params: dict[str, Any]) -> None:
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

        _end_live(self._live)
        self._live = None
        if not is_main_process():
            return
        run = mlflow.active_run()
        reports = sorted(n for n in pipeline.all_outputs() if n.endswith(".report.html"))
        for name in reports:
            study = name.removesuffix(".report.html")
            report = _saved_path(catalog, name)
            summary_path = _saved_path(catalog, f"{study}.summary")
            summary = pd.read_csv(summary_path) if summary_path and summary_path.is_file() else None
            claims_path = _saved_path(catalog, f"{study}.claims")
            claims = pd.read_csv(claims_path) if claims_path and claims_path.is_file() else None
            view = None
            if run is not None and summary is not None:
                view = _table_view(run, study, summary)
            lines = closing_block(
                study,
                str(report.resolve()) if report and report.is_file() else None,
                summary,
                run.info.run_id if run else None,
                run.info.experiment_id if run else None,
                view=view,
                claims=claims,
            )
            print("\n".join(lines), flush=True)


def _table_view(run: Any, study: str, summary: Any) -> str | None:
    """:func:`present_columns` for this run; a view that cannot be saved is only logged:
    the run's results are what matters."""
    import mlflow

    try:
        return present_columns(
            mlflow.MlflowClient(), run.info.experiment_id, study, summary, run.info.run_id
        )
    except Exception as error:  # the store's errors vary by backend
        logging.getLogger(__name__).warning("no MLflow runs-table view for %s: %s", study, error)
        return None
