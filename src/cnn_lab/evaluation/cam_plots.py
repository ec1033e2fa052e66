"""CAM figures: maps blended over the images they explain.

Functions take arrays and return matplotlib Figures; saving and logging is the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

WRONG = "tab:red"


@dataclass
class ModelMaps:
    """One model's maps of some images: ``maps`` N x H x W (or N x K x H x W for top-k),
    with the classes they are for and their predicted probabilities."""

    name: str
    maps: np.ndarray
    classes: np.ndarray  # N (predicted class) or N x K (top-k classes)
    probabilities: np.ndarray  # same shape as classes


def blend(image: np.ndarray, cam: np.ndarray, colormap: str, alpha: float) -> np.ndarray:
    """H x W x 3 floats in [0, 1]: ``alpha`` of the coloured map over the C x H x W image."""
    rgb = image.transpose(1, 2, 0).astype(np.float64) / 255.0
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    heat = matplotlib.colormaps[colormap](np.clip(cam, 0.0, 1.0))[..., :3]
    return (1.0 - alpha) * rgb + alpha * heat


def _tight(fig: Figure) -> None:
    """tight_layout that leaves room for the suptitle."""
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _mark_wrong(ax) -> None:
    for spine in ax.spines.values():
        spine.set_edgecolor(WRONG)
        spine.set_linewidth(3)


def _original(ax, image: np.ndarray, title: str, boxes: np.ndarray | None, index: int) -> None:
    """An image as it went in, titled with its class, its true box drawn in white."""
    ax.imshow(image.transpose(1, 2, 0).squeeze())
    ax.set_title(title, fontsize=9)
    if boxes is not None:
        x0, y0, x1, y1 = boxes[index]
        corner = (x0 - 0.5, y0 - 0.5)
        ax.add_patch(plt.Rectangle(corner, x1 - x0, y1 - y0, fill=False, color="white", lw=1.2))
    _off(ax)


def cam_grid(
    images: np.ndarray,
    labels: Sequence[int],
    class_names: Sequence[str],
    models: Sequence[ModelMaps],
    *,
    colormap: str = "jet",
    alpha: float = 0.5,
    boxes: np.ndarray | None = None,
) -> Figure:
    """Columns: one image per class. Row 1: the originals (true box drawn when known); then
    one row per model: the CAM of the true class, titled with the predicted class and its
    probability, wrong predictions in red with a red frame."""
    n = len(images)
    fig, axes = plt.subplots(
        1 + len(models), n, figsize=(1.9 * n, 2.05 * (1 + len(models))), squeeze=False
    )
    for col in range(n):
        _original(axes[0][col], images[col], class_names[labels[col]], boxes, col)
        for row, model in enumerate(models, start=1):
            ax = axes[row][col]
            ax.imshow(blend(images[col], model.maps[col], colormap, alpha))
            predicted = int(model.classes[col])
            wrong = predicted != int(labels[col])
            title = (
                f"{'✗ ' if wrong else ''}{class_names[predicted]} {model.probabilities[col]:.2f}"
            )
            ax.set_title(title, fontsize=8, color=WRONG if wrong else "black")
            if wrong:
                _mark_wrong(ax)
            _off(ax)
            if col == 0:
                ax.set_ylabel(model.name, fontsize=9)
    axes[0][0].set_ylabel("image", fontsize=9)
    fig.suptitle(f"CAM of the true class (colormap {colormap}, alpha {alpha:g})", fontsize=10)
    _tight(fig)
    return fig


def top_k_grid(
    images: np.ndarray,
    labels: Sequence[int],
    class_names: Sequence[str],
    models: Sequence[ModelMaps],
    *,
    colormap: str = "jet",
    alpha: float = 0.5,
) -> Figure:
    """One row per (image, model): the original, then the CAMs of the model's top-k
    predicted classes with their probabilities (the true class underlined by a frame)."""
    k = models[0].classes.shape[1]
    rows = [(i, m) for i in range(len(images)) for m in models]
    fig, axes = plt.subplots(
        len(rows), 1 + k, figsize=(1.9 * (1 + k), 2.0 * len(rows)), squeeze=False
    )
    for row, (i, model) in enumerate(rows):
        ax = axes[row][0]
        ax.imshow(images[i].transpose(1, 2, 0).squeeze())
        ax.set_title(f"true: {class_names[labels[i]]}", fontsize=8)
        ax.set_ylabel(model.name, fontsize=8)
        _off(ax)
        for j in range(k):
            ax = axes[row][1 + j]
            cls = int(model.classes[i, j])
            ax.imshow(blend(images[i], model.maps[i, j], colormap, alpha))
            ax.set_title(f"#{j + 1} {class_names[cls]} {model.probabilities[i, j]:.2f}", fontsize=8)
            if cls == int(labels[i]):
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:green")
                    spine.set_linewidth(3)
            _off(ax)
    fig.suptitle(f"CAMs of the top-{k} predicted classes", fontsize=10)
    _tight(fig)
    return fig


def methods_grid(
    images: np.ndarray,
    labels: Sequence[int],
    class_names: Sequence[str],
    rows: Sequence[tuple[str, str, np.ndarray]],
    *,
    colormap: str = "jet",
    alpha: float = 0.5,
    boxes: np.ndarray | None = None,
) -> Figure:
    """Columns: one image per class; row 1 the images (true box in white), then one row
    per (model, method, N x H x W maps of the true class), grouped by model."""
    n = len(images)
    fig, axes = plt.subplots(
        1 + len(rows), n, figsize=(1.7 * n, 1.75 * (1 + len(rows))), squeeze=False
    )
    for col in range(n):
        _original(axes[0][col], images[col], class_names[labels[col]], boxes, col)
        for row, (_, _, maps) in enumerate(rows, start=1):
            axes[row][col].imshow(blend(images[col], maps[col], colormap, alpha))
            _off(axes[row][col])
    axes[0][0].set_ylabel("image", fontsize=9)
    for row, (model, method, _) in enumerate(rows, start=1):
        axes[row][0].set_ylabel(f"{model}\n{method}", fontsize=8)
    fig.suptitle("Saliency of the true class, by model and method", fontsize=10)
    _tight(fig)
    return fig
