"""Tables and figures that put several approaches to one task side by side."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cnn_lab.evaluation.figure_layout import panel_grid
from cnn_lab.evaluation.findings import across_seeds, statistic_columns
from cnn_lab.evaluation.plots import mean_line

APPROACH_COLUMNS = [
    "approach",
    "group",
    "seed",
    "preset",
    "optimizer",
    "lr",
    "backbone_lr",
    "batch_size",
    "dropout",
    "val_accuracy",
    "test_accuracy",
    "train_seconds",
    "trainable_parameters",
    "epochs_run",
    "best_epoch",
    "stopped_epoch",
    "converged",
    "status",
    "mlflow_run_id",
]


def approach_table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per approach in a fixed column order (missing values stay empty)."""
    table = pd.DataFrame(list(rows))
    extra = [c for c in table.columns if c not in APPROACH_COLUMNS]
    return table.reindex(columns=[*APPROACH_COLUMNS, *extra])


def history_table(results: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Per-epoch rows of every run that has a ``history``, tagged with its approach and
    its training seed."""
    frames = [
        pd.DataFrame(r["history"]).assign(approach=r["approach"], group=r["group"], seed=r["seed"])
        for r in results
        if r.get("history")
    ]
    history = pd.concat(frames, ignore_index=True)
    leading = ["approach", "group", "seed", "epoch"]
    return history[leading + [c for c in history.columns if c not in leading]]


def overlaid_curves(history: pd.DataFrame, title: str) -> Figure:
    """Training loss and validation accuracy by epoch, one line per approach: the mean
    over seeds, with a band one standard deviation either side when they repeat."""
    fig, axes = panel_grid(1, 2, width=5.0, height=3.4)
    loss_ax, acc_ax = axes[0]
    for approach, rows in history.groupby("approach", sort=False):
        mean_line(loss_ax, rows, "train_loss", approach, marker=".", markersize=None)
        mean_line(acc_ax, rows, "val_accuracy", approach, marker=".", markersize=None)
    loss_ax.set_ylabel("training loss")
    loss_ax.set_yscale("log")
    acc_ax.set_ylabel("validation accuracy")
    acc_ax.set_ylim(0, 1.02)
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    return fig


def accuracy_by_approach(summary: pd.DataFrame) -> Figure:
    """Validation and test accuracy of every approach as paired bars: the mean over
    seeds, error bars one standard deviation (none with one seed)."""
    stats = summary.groupby("approach", sort=False)[["val_accuracy", "test_accuracy"]].agg(
        ["mean", "std"]
    )
    stats = stats.fillna({(m, "std"): 0.0 for m in ("val_accuracy", "test_accuracy")})
    fig, axes = panel_grid(1, 1, width=max(6.0, 0.7 * len(stats)), height=4)
    ax = axes[0][0]
    positions = np.arange(len(stats))
    for offset, (metric, label) in (
        (-0.2, ("val_accuracy", "validation")),
        (0.2, ("test_accuracy", "test")),
    ):
        ax.bar(
            positions + offset,
            stats[(metric, "mean")],
            0.4,
            yerr=stats[(metric, "std")],
            capsize=3,
            label=label,
        )
    ax.set_xticks(list(positions), list(stats.index), rotation=45, ha="right")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    return fig


COUNTS = ("seed", "batch_size", "trainable_parameters", "epochs_run", "best_epoch", "stopped_epoch")


def report_tables(
    summary: pd.DataFrame,
    source_result: Mapping[str, Any],
    trials: pd.DataFrame,
    keys: Sequence[str],
    statistics: Sequence[str],
) -> dict[str, pd.DataFrame]:
    """Every approach, the spread across seeds (when repeated, by ``keys`` and
    ``statistics``), the source network and the search's trials."""
    across = across_seeds(summary, keys, statistics)
    seeds = {"mean and std across seeds": across} if across["seeds"].max() > 1 else {}
    trial_columns = ["number", "state", "value", "duration"]
    trial_columns += [c for c in trials.columns if c.startswith(("params_", "user_attrs_"))]
    every = summary.drop(columns=statistic_columns(statistics))
    counts = [c for c in COUNTS if c in every]
    every = every.astype({c: "Int64" for c in counts})
    return {
        "every approach (test accuracy scored once, at the end)": every,
        **seeds,
        "source network": pd.DataFrame([source_result]),
        "hyper-parameter search trials (value: validation accuracy)": trials.reindex(
            columns=[c for c in trial_columns if c in trials]
        ),
    }
