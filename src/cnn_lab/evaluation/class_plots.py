"""Figures for classification studies with many, imbalanced, named classes: class counts
per split, a labelled confusion matrix, a grid of misclassified images, a variant
comparison. Functions return Figures; saving and logging is the caller's business."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cnn_lab.evaluation.figure_layout import PAGE_WIDTH_IN


def _figure(width: float, height: float) -> Figure:
    """No wider than the report's page, so its text is shown full size; outside pyplot's
    registry, so it is freed once saved."""
    return Figure(figsize=(min(width, PAGE_WIDTH_IN), height), layout="constrained")


def class_counts(counts: pd.DataFrame) -> Figure:
    """Horizontal bars: rows are classes (largest first), one bar per split column."""
    counts = counts.loc[counts.sum(axis=1).sort_values().index]
    fig = _figure(8, max(3.0, 0.22 * len(counts) + 1.2))
    ax = fig.add_subplot()
    left = np.zeros(len(counts))
    for column in counts.columns:
        ax.barh(counts.index, counts[column], left=left, label=column)
        left += counts[column].to_numpy()
    ax.set_xlabel("images")
    ax.tick_params(axis="y", labelsize="small")
    ax.legend()
    ratio = counts.sum(axis=1).max() / max(counts.sum(axis=1).min(), 1)
    ax.set_title(f"images per class (largest : smallest = {ratio:.0f} : 1)")
    ax.grid(alpha=0.3, axis="x")
    return fig


def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """A row-normalised confusion matrix with class names on both axes."""
    k = len(class_names)
    # Room for the colour bar beside it within the page's width.
    side = min(max(4.0, 0.28 * k + 2.5), PAGE_WIDTH_IN - 1.0)
    fig = _figure(side + 1.0, side + 1.0)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="Blues")
    ax.set_xticks(range(k), class_names, rotation=90, fontsize="small")
    ax.set_yticks(range(k), class_names, fontsize="small")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if k <= 15:
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(
                j,
                i,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize="small",
                color="white" if value > 0.5 else "black",
            )
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    return fig


def image_grid(images: np.ndarray, captions: Sequence[str], title: str, columns: int = 4) -> Figure:
    """uint8 N x C x H x W images with a caption each; an empty set gives a note instead."""
    n = len(images)
    rows = max(1, -(-n // columns))
    fig = _figure(2.6 * columns, 2.9 * rows)
    if n == 0:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        fig.suptitle(title)
        return fig
    for index, (image, caption) in enumerate(zip(images, captions, strict=True)):
        ax = fig.add_subplot(rows, columns, index + 1)
        ax.imshow(image.transpose(1, 2, 0))
        ax.set_title(caption, fontsize="small")
        ax.axis("off")
    fig.suptitle(title)
    return fig


def compare_variants(summary: pd.DataFrame, metrics: Sequence[str]) -> Figure:
    """Grouped bars: one group per metric, one bar per variant; with a row per training
    seed the bar is the mean over seeds and the error bar one standard deviation."""
    groups = summary.groupby("variant", sort=False)[list(metrics)]
    means, stds = groups.mean(), groups.std().fillna(0.0)
    fig = _figure(max(6.0, 1.4 * len(metrics) + 2), 4)
    ax = fig.add_subplot()
    width = 0.8 / max(len(means), 1)
    x = np.arange(len(metrics))
    for index, variant in enumerate(means.index):
        ax.bar(
            x + index * width,
            means.loc[variant],
            width,
            yerr=stds.loc[variant],
            capsize=2,
            label=variant,
        )
    ax.set_xticks(x + 0.4 - width / 2, metrics, rotation=20)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("test score")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    return fig
