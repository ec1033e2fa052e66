"""Figures people look at instead of reading tables.

Functions take tidy pandas tables and return matplotlib Figures; saving and logging is
the caller's business (the Kedro catalog and MLflow).
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cnn_lab.evaluation.figure_layout import panel_grid  # noqa: E402

GRAD_PREFIX = "grad_norm_"


def diverged_at(line: pd.DataFrame) -> int | None:
    """First epoch of a variant's history whose training loss is not finite."""
    if "train_loss" not in line:
        return None
    bad = line[~np.isfinite(line["train_loss"].astype(float))]
    return int(bad["epoch"].min()) if len(bad) else None


def mean_line(
    ax: Any, runs: pd.DataFrame, metric: str, label: str, x: str = "epoch", **style: Any
) -> tuple[pd.DataFrame, Any]:
    """``metric`` against ``x`` drawn as the mean of the rows at each ``x`` (one per seed)
    with a band one standard deviation either side where there are several; returns the
    drawn means and the line (for its colour)."""
    line = runs.groupby(x)[metric].agg(["mean", "std"]).reset_index()
    (drawn,) = ax.plot(
        line[x], line["mean"], **({"marker": "o", "markersize": 2} | style), label=label
    )
    if line["std"].notna().any():
        ax.fill_between(
            line[x],
            line["mean"] - line["std"],
            line["mean"] + line["std"],
            color=drawn.get_color(),
            alpha=0.2,
        )
    return line, drawn


def curves_by_depth(
    history: pd.DataFrame, metric: str, ylabel: str, *, log: bool = False
) -> Figure:
    """``metric`` against epoch: one panel per family, one line per depth; with several
    seeds the line is their mean and the band one standard deviation either side. A
    diverged variant keeps its line, ends in a cross and says so in the legend."""
    families = list(dict.fromkeys(history["family"]))
    fig, axes = panel_grid(1, len(families), width=3.6, height=3.2)
    for ax, family in zip(axes[0], families, strict=True):
        rows = history[history["family"] == family]
        for depth, runs in rows.groupby("depth", sort=True):
            diverged = diverged_at(runs)
            label = f"depth {depth}" + (f" (diverged, epoch {diverged})" if diverged else "")
            line, drawn = mean_line(ax, runs, metric, label)
            if diverged:
                finite = line[np.isfinite(line["mean"].astype(float))]
                x = finite["epoch"].iloc[-1] if len(finite) else diverged
                y = finite["mean"].iloc[-1] if len(finite) else (1.0 if log else 0.0)
                ax.plot([x], [y], marker="x", markersize=9, color=drawn.get_color())
        ax.set_title(family)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def gradient_norms_by_layer(history: pd.DataFrame) -> Figure:
    """Per-layer gradient norm (log scale) after the first and the last epoch:
    rows are those two moments, panels are families, lines are depths (mean over seeds)."""
    families = list(dict.fromkeys(history["family"]))
    columns = sorted(c for c in history.columns if c.startswith(GRAD_PREFIX))
    fig, axes = panel_grid(2, len(families), width=3.6, height=3.2)
    for col, family in enumerate(families):
        rows = history[history["family"] == family]
        for depth, runs in rows.groupby("depth", sort=True):
            for row_index, (moment, pick) in enumerate(
                (("end of epoch 1", runs["epoch"].min()), ("end of training", runs["epoch"].max()))
            ):
                ax = axes[row_index][col]
                record = runs[runs["epoch"] == pick][columns].mean().dropna()
                norms = record.to_numpy(dtype=float)
                ax.plot(
                    np.arange(1, len(norms) + 1),
                    np.maximum(norms, 1e-30),
                    marker=".",
                    label=f"depth {depth}",
                )
                ax.set_title(f"{family}, {moment}")
        for ax in axes[:, col]:
            ax.set_yscale("log")
            ax.set_xlabel("layer (input → output)")
            ax.set_ylabel("weight-gradient norm")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
    return fig


def _over_seeds(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean and standard deviation (0 with one seed) of ``metric`` per (family, depth)."""
    stats = summary.groupby(["family", "depth"], sort=False)[metric].agg(["mean", "std"])
    return stats.fillna({"std": 0.0}).reset_index()


def accuracy_vs_depth(summary: pd.DataFrame) -> Figure:
    """Test accuracy by depth per family: the mean over seeds, error bars one std."""
    fig, axes = panel_grid(1, 1, width=5.5, height=4)
    ax = axes[0][0]
    for family, rows in _over_seeds(summary, "test_accuracy").groupby("family", sort=False):
        rows = rows.sort_values("depth")
        (drawn, *_) = ax.errorbar(
            rows["depth"], rows["mean"], yerr=rows["std"], marker="o", capsize=3, label=family
        )
        status = summary["status"] if "status" in summary else pd.Series("ok", summary.index)
        diverged = summary[(summary["family"] == family) & (status == "diverged")]
        for _, row in diverged.iterrows():  # a cross at chance level or below, annotated
            y = row["test_accuracy"] if np.isfinite(row["test_accuracy"]) else 0.0
            ax.plot([row["depth"]], [y], marker="x", markersize=10, color=drawn.get_color())
            ax.annotate(
                f"{family} diverged (epoch {int(row['diverged_epoch'])})",
                (row["depth"], y),
                textcoords="offset points",
                xytext=(4, 6),
                fontsize="small",
                color=drawn.get_color(),
            )
    ax.set_xscale("log", base=2)
    depths = sorted(summary["depth"].unique())
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("depth (layers)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def training_time(summary: pd.DataFrame) -> Figure:
    """Training time per variant: the mean over seeds, error bars one std."""
    stats = _over_seeds(summary, "train_seconds")
    # Horizontal bars, one line per variant: labels stay readable however many variants
    # the grid has, where vertical ones would have to shrink to fit the page's width.
    fig, axes = panel_grid(1, 1, width=7.0, height=max(3.0, 0.28 * len(stats) + 1.0))
    ax = axes[0][0]
    labels = [f"{f} d{d}" for f, d in zip(stats["family"], stats["depth"], strict=True)]
    ax.barh(range(len(stats)), stats["mean"], xerr=stats["std"], color="tab:blue", capsize=2)
    ax.set_yticks(range(len(stats)), labels, fontsize="small")
    ax.invert_yaxis()  # first variant on top, as in the tables
    ax.set_xlabel("training time (s)")
    ax.grid(alpha=0.3, axis="x")
    return fig


def variant_curves(history: pd.DataFrame, title: str) -> Figure:
    """One variant's losses and validation accuracy by epoch."""
    fig, axes = panel_grid(1, 2, width=4.5, height=3.4)
    loss_ax, acc_ax = axes[0]
    loss_ax.plot(history["epoch"], history["train_loss"], label="train")
    if "val_loss" in history:
        loss_ax.plot(history["epoch"], history["val_loss"], label="validation")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.legend()
    if "val_accuracy" in history:
        acc_ax.plot(history["epoch"], history["val_accuracy"], color="tab:green")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("validation accuracy")
    acc_ax.set_ylim(0, 1.02)
    fig.suptitle(title)
    return fig
