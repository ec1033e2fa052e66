"""Figures of the initialisation study: run-against-run curves and first-layer kernels.

Functions take tidy tables or tensors and return matplotlib Figures; saving and logging
are the caller's business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import Tensor

from cnn_lab.evaluation.figure_layout import panel_grid
from cnn_lab.evaluation.plots import mean_line

CURVE_METRICS = (("test_accuracy", "test accuracy"), ("train_loss", "training loss"))


def compare_runs(
    history: pd.DataFrame,
    panels: Mapping[str, Sequence[str]],
    *,
    metrics: Sequence[tuple[str, str]] = CURVE_METRICS,
    title: str = "",
) -> Figure:
    """One column per panel (its runs overlaid), one row per metric, against epoch.

    ``history`` is long: columns ``run``, ``epoch`` and the metrics (and ``seed`` when runs
    repeat: the line is then the mean over seeds, the band one standard deviation).
    """
    fig, axes = panel_grid(len(metrics), len(panels), width=3.6, height=3.2)
    for col, (panel, runs) in enumerate(panels.items()):
        for row, (metric, label) in enumerate(metrics):
            ax = axes[row][col]
            for run in runs:
                rows = history[history["run"] == run]
                mean_line(ax, rows, metric, run)
            ax.set_title(panel if row == 0 else "")
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            # Accuracy autoscales: near-ceiling runs would look alike on a 0-1 axis.
            if not metric.endswith("accuracy"):
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def kernel_grid(rows: Mapping[str, Tensor], title: str = "") -> Figure:
    """Each row one set of first-layer kernels (filters x 1 x k x k), shown side by side.

    The grey scale is per row and its range is printed in the row label, so a by-hand 0/1
    pattern and a small default draw are both readable. One axes per row (a mosaic of framed
    kernels) keeps the figure cheap to lay out.
    """
    fig, axes = panel_grid(len(rows), 1, width=6.2, height=1.0)
    for ax, (label, kernels) in zip(axes[:, 0], rows.items(), strict=True):
        values = kernels.detach().float().cpu().numpy()[:, 0]
        low, high = float(values.min()), float(values.max())
        # Each kernel framed by NaN pixels drawn in blue, so white (1) pixels at a kernel's
        # edge stay visible against the page.
        framed = np.pad(values, ((0, 0), (1, 1), (1, 1)), constant_values=np.nan)
        mosaic = np.concatenate(list(framed), axis=1)
        cmap = plt.get_cmap("gray").with_extremes(bad="#5b84c4")
        ax.imshow(mosaic, cmap=cmap, vmin=low, vmax=high if high > low else low + 1)
        side = framed.shape[2]
        # Numbers alone: "kernel 1" ... "kernel 16" would not fit side by side at a
        # readable size; the axis label says what they count.
        ax.set_xticks([c * side + side // 2 for c in range(len(values))])
        ax.set_xticklabels([str(c + 1) for c in range(len(values))], fontsize="small")
        ax.set_yticks([])
        # Upright, the two-line label would be taller than the one-kernel-high row.
        ax.set_ylabel(
            f"{label}\n[{low:.2f}, {high:.2f}]",
            fontsize="small",
            rotation=0,
            ha="right",
            va="center",
        )
        for spine in ax.spines.values():
            spine.set_visible(False)
    axes[-1][0].set_xlabel("kernel", fontsize="small")
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def time_per_batch(summary: pd.DataFrame) -> Figure:
    """Seconds per training batch, one bar per run (the mean over seeds, error bars one
    standard deviation, when runs repeat)."""
    stats = summary.groupby("run", sort=False)["seconds_per_batch"].agg(["mean", "std"])
    fig, axes = panel_grid(1, 1, width=max(5.0, 0.8 * len(stats)), height=3.6)
    ax = axes[0][0]
    positions = np.arange(len(stats))
    ax.bar(
        positions,
        stats["mean"] * 1e3,
        yerr=stats["std"].fillna(0.0) * 1e3,
        color="tab:blue",
        capsize=3,
    )
    ax.set_xticks(positions, list(stats.index), fontsize="small")
    ax.set_ylabel("milliseconds per training batch")
    ax.grid(alpha=0.3, axis="y")
    return fig
