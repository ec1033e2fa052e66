"""Hyper-parameter search with Optuna: the space, the pruner, the study and its figures.

The study lives in an Optuna storage (an SQLite file by default, a server database URL
to share one study between machines); each process adds its trials and the best trial is
taken over all of them. Training itself stays with the engine: the caller passes a
function that trains one configuration and reports each epoch through
:class:`PruningCallback`.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from matplotlib.figure import Figure

from cnn_lab.training.callbacks import Callback, EpochState

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

PRUNERS = ("none", "median", "successive_halving", "hyperband")
IN_MEMORY = "memory"


@dataclass(frozen=True)
class SearchSpace:
    """Learning rate (log-uniform), batch size (categorical), dropout before the head and,
    when ``optimizers`` is not empty, the optimizer (categorical)."""

    lr: tuple[float, float] = (1e-6, 1e-2)
    batch_sizes: tuple[int, ...] = (16, 32, 64, 128, 256)
    dropout: tuple[float, float] = (0.0, 0.5)
    optimizers: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, s: Mapping[str, Any]) -> SearchSpace:
        """The space a ``search`` block describes (``lr`` and ``dropout`` ranges)."""
        return cls(
            lr=(s["lr"]["low"], s["lr"]["high"]),
            batch_sizes=tuple(s["batch_sizes"]),
            dropout=(s["dropout"]["low"], s["dropout"]["high"]),
            optimizers=tuple(s["optimizers"] or ()),
        )

    def __post_init__(self) -> None:
        for name, (low, high) in (("lr", self.lr), ("dropout", self.dropout)):
            if not low < high:
                raise ValueError(f"search range {name}: low {low} must be below high {high}")
        if self.lr[0] <= 0:
            raise ValueError(f"search range lr must be positive for a log scale, got {self.lr}")
        if not self.batch_sizes:
            raise ValueError("search batch_sizes must not be empty")

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        params = {
            "lr": trial.suggest_float("lr", *self.lr, log=True),
            "batch_size": trial.suggest_categorical("batch_size", list(self.batch_sizes)),
            "dropout": trial.suggest_float("dropout", *self.dropout),
        }
        if self.optimizers:
            params["optimizer"] = trial.suggest_categorical("optimizer", list(self.optimizers))
        return params

    def contains(self, params: dict[str, Any]) -> bool:
        """Whether ``params`` (lr, batch_size, dropout[, optimizer]) is a point of the space."""
        return (
            self.lr[0] <= params["lr"] <= self.lr[1]
            and params["batch_size"] in self.batch_sizes
            and self.dropout[0] <= params["dropout"] <= self.dropout[1]
            and (not self.optimizers or params.get("optimizer") in self.optimizers)
        )

    def point(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` reduced to this space's keys."""
        keys = ("lr", "batch_size", "dropout", *(("optimizer",) if self.optimizers else ()))
        return {k: params[k] for k in keys}


def enqueue_untuned(
    study: optuna.Study, space: SearchSpace, params: dict[str, Any], source: str
) -> bool:
    """Queue ``params`` (a configuration trained without tuning, e.g. the best preset) as
    the search's next trial, so the best trial, and the tuned model retrained from it, is
    never worse on validation than that configuration (Optuna's ``enqueue_trial``; a
    study that already holds it, shared or rerun, is not given it again). False when the
    configuration lies outside the space."""
    if not space.contains(params):
        logger.warning(
            "untuned configuration %s (%s) lies outside the search space", params, source
        )
        return False
    study.enqueue_trial(
        space.point(params), user_attrs={"enqueued_from": source}, skip_if_exists=True
    )
    return True


def best_untuned(
    results: Sequence[dict[str, Any]], space: SearchSpace, preset: str
) -> dict[str, Any] | None:
    """The untuned run (``results``) with the best validation accuracy among those the
    search can represent (its ``preset``, a point of its space): its first trial."""
    fits = [
        r
        for r in results
        if r["preset"] == preset and math.isfinite(r["val_accuracy"]) and space.contains(r)
    ]
    return max(fits, key=lambda r: r["val_accuracy"], default=None)


def open_search(
    settings: Mapping[str, Any], seed: int, untuned: Sequence[dict[str, Any]]
) -> tuple[optuna.Study, SearchSpace]:
    """The study a ``search`` block describes (its space, pruner, name and storage),
    created or joined, with the best ``untuned`` run it can represent queued as its next
    trial when this process adds trials (see :func:`best_untuned`); and its space."""
    space = SearchSpace.from_settings(settings)
    pruner = build_pruner(settings["pruner"], startup_trials=settings["pruner_startup_trials"])
    study = open_study(settings["study_name"], settings["storage"], seed=seed, pruner=pruner)
    start = best_untuned(untuned, space, settings["preset"])
    if start is not None and settings["n_trials"]:
        enqueue_untuned(study, space, start, start["approach"])
    return study, space


def build_pruner(name: str, *, startup_trials: int = 2, warmup_epochs: int = 1):
    """``none`` | ``median`` | ``successive_halving`` | ``hyperband``."""
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        # Steps are 1-based epochs; Optuna prunes from step n_warmup_steps on.
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs + 1
        )
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    raise ValueError(f"unknown pruner {name!r}; allowed: {', '.join(PRUNERS)}")


def open_study(
    name: str, storage: str, *, seed: int, pruner: optuna.pruners.BasePruner
) -> optuna.Study:
    """Create the study, or join it when ``storage`` already holds one of that name.

    Several processes (on one machine or several) may open the same study at once and
    optimise it together: each trial's proposals are seeded from ``seed`` and its trial
    number, which the storage hands out once, so no two processes propose alike.
    """
    return optuna.create_study(
        study_name=name,
        storage=_storage(storage),
        direction="maximize",
        sampler=TrialSeededSampler(seed),
        pruner=pruner,
        load_if_exists=True,
    )


SQLITE_LOCK_TIMEOUT_S = 60
SCHEMA_ATTEMPTS = 5


def _storage(url: str) -> optuna.storages.RDBStorage | None:
    """``memory`` -> in-process; else the database, its tables created if need be.

    Processes opening a new database at the same moment race to create its tables, and
    all but one fail; they retry and find the tables made. An SQLite file waits for
    another process's write lock instead of failing at once.
    """
    if url == IN_MEMORY:
        return None
    prefix = "sqlite:///"  # SQLite creates its file, but not the folder it goes in
    if url.startswith(prefix):
        Path(url[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)
    from sqlalchemy.exc import IntegrityError, OperationalError

    engine_kwargs = (
        {"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT_S}} if url.startswith("sqlite:") else {}
    )
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (IntegrityError, OperationalError):
            if attempt == SCHEMA_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """Optuna's TPE sampler, its random state seeded with ``seed + trial number`` before
    every trial.

    Trial numbers are unique within a study, whichever process draws them, so processes
    sharing one study propose different configurations, where one seed per process would
    have every process start with the same proposals. TPE's ``constant_liar`` (its
    default) keeps them away from configurations another process is still training.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._tpe = optuna.samplers.TPESampler(seed=seed)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._tpe = optuna.samplers.TPESampler(seed=self.seed + trial.number)
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> dict[str, Any]:
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: Any, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: Any, param_name: str, param_distribution: Any
    ) -> Any:
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: Any, state: Any, values: Sequence[float] | None
    ) -> None:
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()


class PruningCallback(Callback):
    """Reports ``monitor`` to the trial after every epoch and stops training when Optuna
    prunes the trial (the caller raises :class:`optuna.TrialPruned` afterwards)."""

    def __init__(self, trial: optuna.Trial, monitor: str = "val_accuracy") -> None:
        self.trial, self.monitor = trial, monitor
        self.pruned_epoch: int | None = None

    def on_epoch_end(self, state: EpochState) -> None:
        self.trial.report(state.metrics[self.monitor], state.epoch)
        if self.trial.should_prune():
            self.pruned_epoch = state.epoch
            state.stop = True


TrainTrial = Callable[[optuna.Trial, dict[str, Any], PruningCallback], float]


def run_search(
    study: optuna.Study, space: SearchSpace, train: TrainTrial, *, n_trials: int
) -> list[optuna.trial.FrozenTrial]:
    """Run ``n_trials`` trials of ``train`` (which returns the value to maximise);
    returns this process's trials (others may be adding theirs to the study meanwhile)."""
    mine: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        mine.append(trial.number)
        params = space.suggest(trial)
        callback = PruningCallback(trial)
        value = train(trial, params, callback)
        if callback.pruned_epoch is not None:
            raise optuna.TrialPruned(f"pruned after epoch {callback.pruned_epoch}")
        return value

    study.optimize(objective, n_trials=n_trials)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    return [by_number[number] for number in mine]


def best_params(study: optuna.Study) -> dict[str, Any]:
    """The best completed trial's parameters, its value and number."""
    try:
        best = study.best_trial
    except ValueError as err:
        raise RuntimeError(
            f"study {study.study_name!r} has no completed trial (all pruned or failed); "
            "raise n_trials or use pruner 'none'"
        ) from err
    return {**best.params, "value": best.value, "trial": best.number}


def search_line(study: optuna.Study, mine: Sequence[Any], best: Mapping[str, Any]) -> str:
    """``3 trial(s) here, 10 in study 'transfer'; best trial 4: {...}``: the log line of
    a search that added ``mine`` to ``study``."""
    return (
        f"{len(mine)} trial(s) here, {len(study.trials)} in study {study.study_name!r}; "
        f"best trial {best['trial']}: {best}"
    )


def trials_text(trials: pd.DataFrame | None) -> str:
    """``; 10 trial(s) in the study, 2 pruned; the search started from the untuned run
    finetune/all``, from a study's trials table (Optuna's ``trials_dataframe``); empty
    without one."""
    if trials is None or "state" not in trials:
        return ""
    pruned = int((trials["state"] == "PRUNED").sum())
    text = f"; {len(trials)} trial(s) in the study, {pruned} pruned"
    seeded = trials.get("user_attrs_enqueued_from")
    if seeded is not None and len(seeded.dropna()):
        text += f"; the search started from the untuned run {seeded.dropna().iloc[0]}"
    return text


def search_figures(study: optuna.Study) -> dict[str, Figure]:
    """Optuna's own figures, drawn with matplotlib (its plotly figures would need kaleido
    to become PNG files)."""
    import matplotlib
    from optuna.visualization import matplotlib as ovm

    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    figures: dict[str, Figure] = {}
    # Optuna switches matplotlib to its "ggplot" style globally; keep that to these figures.
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        figures["optimization_history"] = ovm.plot_optimization_history(study).figure
        figures["intermediate_values"] = ovm.plot_intermediate_values(study).figure
        figures["param_importances"] = _importances(study, completed, ovm)
    for figure in figures.values():
        figure.set_size_inches(7, 4.5)
        figure.set_layout_engine("constrained")
    return figures


def _importances(study: optuna.Study, completed: Sequence[Any], ovm: Any) -> Figure:
    """fANOVA importances need two completed trials that differ; with fewer the figure
    says so rather than failing the run."""
    if len(completed) >= 2:
        try:
            return ovm.plot_param_importances(study).figure
        except (RuntimeError, ValueError) as err:
            reason = str(err)
    else:
        reason = f"{len(completed)} completed trial(s); importances need at least 2"
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, f"Parameter importances unavailable:\n{reason}", ha="center", va="center")
    logger.warning("parameter importances unavailable: %s", reason)
    return figure
