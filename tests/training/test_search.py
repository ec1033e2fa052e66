"""The Optuna search: ranges, pruning, and one study shared through a storage URL."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest

from cnn_lab.training.callbacks import EpochState
from cnn_lab.training.search import (
    SearchSpace,
    best_params,
    build_pruner,
    enqueue_untuned,
    open_search,
    open_study,
    run_search,
    trials_text,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_ranges_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="lr: low 0.01 must be below high 0.001"):
        SearchSpace(lr=(1e-2, 1e-3))
    with pytest.raises(ValueError, match="dropout: low 0.5 must be below high 0.5"):
        SearchSpace(dropout=(0.5, 0.5))


def _fake_training(trial, params, pruning) -> float:
    """Validation accuracy peaks at lr = 1e-3; reported per epoch like the engine does."""
    import math

    score = 1.0 - abs(math.log10(params["lr"]) + 3) / 10
    for epoch in (1, 2, 3):
        state = EpochState(None, None, epoch, 3, {"val_accuracy": score * epoch / 3})  # type: ignore[arg-type]
        pruning.on_epoch_end(state)
        if state.stop:
            break
    return score


def test_search_samples_inside_the_space_and_storage_shares_the_study(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    space = SearchSpace(batch_sizes=(16, 32))
    first = open_study("shared", storage, seed=0, pruner=build_pruner("none"))
    trials = run_search(first, space, _fake_training, n_trials=3)
    assert len(trials) == 3
    for trial in trials:
        assert 1e-6 <= trial.params["lr"] <= 1e-2
        assert trial.params["batch_size"] in (16, 32)
        assert 0.0 <= trial.params["dropout"] <= 0.5
    # a second process (another machine with the same database URL) joins the study
    second = open_study("shared", storage, seed=0, pruner=build_pruner("none"))
    more = run_search(second, space, _fake_training, n_trials=2)
    assert [t.number for t in more] == [3, 4]
    assert len({t.params["lr"] for t in second.trials}) == 5  # no repeated proposals
    best = best_params(second)
    assert best["value"] == max(t.value for t in second.trials)


def test_median_pruner_stops_bad_trials() -> None:
    study = open_study("pruned", "memory", seed=0, pruner=build_pruner("median", startup_trials=1))
    study.enqueue_trial({"lr": 1e-3, "batch_size": 16, "dropout": 0.1})
    study.enqueue_trial({"lr": 1e-6, "batch_size": 16, "dropout": 0.1})
    run_search(study, SearchSpace(), _fake_training, n_trials=2)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
    assert study.trials[1].last_step == 2  # warm-up epoch 1 is never pruned
    with pytest.raises(ValueError, match="unknown pruner"):
        build_pruner("asha")


def test_search_figures_leave_the_matplotlib_style_alone() -> None:
    import matplotlib

    from cnn_lab.training.search import search_figures

    study = open_study("figures", "memory", seed=0, pruner=build_pruner("none"))
    run_search(study, SearchSpace(), _fake_training, n_trials=3)
    before = dict(matplotlib.rcParams)
    figures = search_figures(study)
    assert set(figures) == {"optimization_history", "intermediate_values", "param_importances"}
    assert matplotlib.rcParams["axes.facecolor"] == before["axes.facecolor"]


def _slow_fake_training(trial, params, pruning) -> float:
    time.sleep(0.05)  # long enough for the other process's trials to interleave
    return _fake_training(trial, params, pruning)


def _sweep_worker(storage: str, n_trials: int, start: Any, overlap: Any) -> dict[str, Any]:
    """One process of a shared sweep, as each `kedro run` of the transfer search is."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start.wait()  # both processes create-or-join the study at the same moment
    study = open_study("sweep", storage, seed=0, pruner=build_pruner("none"))
    waited = []

    def training(trial, params, pruning) -> float:
        if not waited:  # the first trial of each process waits for the other's first trial:
            waited.append(True)  # both are inside a trial at once, however loaded the machine
            overlap.wait(timeout=60)
        return _slow_fake_training(trial, params, pruning)

    trials = run_search(study, SearchSpace(), training, n_trials=n_trials)
    return {"numbers": [t.number for t in trials], "best": best_params(study)}


def test_two_processes_share_one_study_through_an_sqlite_file(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # Separate processes, each with its own database connections (fork: quicker to start).
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
        start, overlap = manager.Barrier(2), manager.Barrier(2)
        futures = [pool.submit(_sweep_worker, storage, 4, start, overlap) for _ in range(2)]
        reports = [f.result(timeout=120) for f in futures]

    study = optuna.load_study(study_name="sweep", storage=storage)
    trials = study.trials
    # Every trial recorded once: distinct numbers, as many as the two processes asked for.
    assert sorted(t.number for t in trials) == list(range(8))
    assert sorted(reports[0]["numbers"] + reports[1]["numbers"]) == list(range(8))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.params["lr"] for t in trials}) == 8  # no process repeated another's proposal
    # The two processes ran trials at the same time: storage that serialised whole trials
    # would leave the overlap barrier waiting until it broke.
    spans = [
        [(t.datetime_start, t.datetime_complete) for t in trials if t.number in r["numbers"]]
        for r in reports
    ]
    first, second = ((min(s for s, _ in w), max(e for _, e in w)) for w in spans)
    assert first[0] < second[1] and second[0] < first[1]
    # The best trial over both processes is reported (by the process that finished last).
    best = max(trials, key=lambda t: t.value)
    assert best_params(study) == {**best.params, "value": best.value, "trial": best.number}
    assert max(r["best"]["value"] for r in reports) == best.value


@pytest.mark.parametrize("pruner", ["none", "median"])
def test_search_never_reports_a_best_below_its_enqueued_untuned_configuration(
    pruner: str,
) -> None:
    """The untuned run sits at the peak of the fake objective (lr 1e-3): whatever the
    sampler proposes afterwards, the best trial is at least as good on validation."""
    space = SearchSpace(batch_sizes=(16, 64), optimizers=("adam", "rmsprop"))
    untuned = {"lr": 1e-3, "batch_size": 64, "dropout": 0.0, "optimizer": "rmsprop", "x": 1}
    expected = _fake_training(None, untuned, _NoPruning())
    for seed in range(3):
        study = open_study(f"s{seed}", "memory", seed=seed, pruner=build_pruner(pruner))
        assert enqueue_untuned(study, space, untuned, "optimizers/rmsprop_lr1e-03")
        trials = run_search(study, space, _fake_training, n_trials=4)
        assert trials[0].params == {k: untuned[k] for k in space.point(untuned)}
        assert trials[0].user_attrs["enqueued_from"] == "optimizers/rmsprop_lr1e-03"
        best = best_params(study)
        assert best["value"] >= expected
    # a rerun on a stored study does not queue the same configuration again
    assert enqueue_untuned(study, space, untuned, "again")
    assert sum(t.state == optuna.trial.TrialState.WAITING for t in study.trials) == 0
    # a configuration outside the space is refused, not silently clipped
    assert not enqueue_untuned(study, space, {**untuned, "batch_size": 32}, "outside")


class _NoPruning:
    def on_epoch_end(self, state: EpochState) -> None:
        pass


SETTINGS = {
    "lr": {"low": 1e-5, "high": 1e-2},
    "batch_sizes": [16, 64],
    "dropout": {"low": 0.0, "high": 0.5},
    "optimizers": None,
    "pruner": "none",
    "pruner_startup_trials": 0,
    "storage": "memory",
    "study_name": "settings",
    "preset": "all",
    "n_trials": 2,
}


def test_open_search_queues_the_best_untuned_run_of_its_preset() -> None:
    untuned = [
        {
            "approach": "head",
            "preset": "head",
            "lr": 1e-3,
            "batch_size": 16,
            "dropout": 0.0,
            "val_accuracy": 0.99,
        },
        {
            "approach": "all",
            "preset": "all",
            "lr": 1e-3,
            "batch_size": 64,
            "dropout": 0.0,
            "val_accuracy": 0.7,
        },
        {
            "approach": "nan",
            "preset": "all",
            "lr": 1e-4,
            "batch_size": 64,
            "dropout": 0.0,
            "val_accuracy": float("nan"),
        },
    ]
    study, space = open_search(SETTINGS, 0, untuned)
    assert space.batch_sizes == (16, 64) and space.optimizers == ()
    (queued,) = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    # "head" scores higher but is not the search's preset; NaN never starts a search
    assert queued.system_attrs["fixed_params"] == {"lr": 1e-3, "batch_size": 64, "dropout": 0.0}
    assert queued.user_attrs["enqueued_from"] == "all"
    # a run that adds no trials (n_trials 0: the best of a stored study) queues nothing
    study, _ = open_search({**SETTINGS, "study_name": "none", "n_trials": 0}, 0, untuned)
    assert not study.trials


def test_trials_text_counts_pruned_trials_and_names_the_first() -> None:
    trials = pd.DataFrame(
        {
            "state": ["COMPLETE", "PRUNED", "COMPLETE"],
            "user_attrs_enqueued_from": ["all", None, None],
        }
    )
    expected = "; 3 trial(s) in the study, 1 pruned; the search started from the untuned run all"
    assert trials_text(trials) == expected
    assert trials_text(trials.drop(columns="user_attrs_enqueued_from")) == (
        "; 3 trial(s) in the study, 1 pruned"
    )
    assert trials_text(None) == trials_text(pd.DataFrame({"number": [0]})) == ""
