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

from cnn_lab.evaluation.figure_layout import panel_grid  # noqa: E402

WRONG = "tab:red"


@dataclass
class ModelMaps:
    """One model's maps of some images: ``maps`` N x H x W (or N x K x H x W for top-k),
    with the classes they are for and their predicted probabilities."""

    name: str
    maps: np.ndarray
    classes: np.ndarray  # N (predicted class) or N x K (top-k classes)
    probabilities: np.ndarray  # same shape as classes


@dataclass(frozen=True)
class Panels:
    """The images a figure explains (N x C x H x W), their true classes, the class names
    and, when known, their true boxes (N x 4), with how a map is blended over an image."""

    images: np.ndarray
    labels: Sequence[int]
    class_names: Sequence[str]
    boxes: np.ndarray | None = None
    colormap: str = "jet"
    alpha: float = 0.5

    def blend(self, index: int, cam: np.ndarray) -> np.ndarray:
        """Image ``index`` with ``cam`` over it."""
        return blend(self.images[index], cam, self.colormap, self.alpha)


def blend(image: np.ndarray, cam: np.ndarray, colormap: str, alpha: float) -> np.ndarray:
    """H x W x 3 floats in [0, 1]: ``alpha`` of the coloured map over the C x H x W image."""
    rgb = image.transpose(1, 2, 0).astype(np.float64) / 255.0
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    heat = matplotlib.colormaps[colormap](np.clip(cam, 0.0, 1.0))[..., :3]
    return (1.0 - alpha) * rgb + alpha * heat


def _starts_band(ax) -> bool:
    """True for the panels in a wrapped grid's first column, which carry the row labels."""
    return ax.get_subplotspec().is_first_col()


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


def _originals_grid(
    panels: Panels, row_labels: Sequence[tuple[str, float]], cell: tuple[float, float]
) -> tuple[Figure, np.ndarray]:
    """One column per image, wrapped to the page: row 0 the originals, then one empty row per
    (label, font size) in ``row_labels``, each band's first column labelled."""
    images, labels = panels.images, panels.labels
    fig, axes = panel_grid(1 + len(row_labels), len(images), width=cell[0], height=cell[1])
    for col in range(len(images)):
        _original(axes[0][col], images[col], panels.class_names[labels[col]], panels.boxes, col)
        if _starts_band(axes[0][col]):
            for row, (label, size) in enumerate([("image", 9), *row_labels]):
                axes[row][col].set_ylabel(label, fontsize=size)
    return fig, axes


def cam_grid(panels: Panels, models: Sequence[ModelMaps]) -> Figure:
    """Columns: one image per class. Row 1: the originals (true box drawn when known); then
    one row per model: the CAM of the true class, titled with the predicted class and its
    probability, wrong predictions in red with a red frame."""
    names = [(model.name, 9) for model in models]
    fig, axes = _originals_grid(panels, names, (1.9, 2.05))
    class_names = panels.class_names
    for col in range(len(panels.images)):
        for row, model in enumerate(models, start=1):
            ax = axes[row][col]
            ax.imshow(panels.blend(col, model.maps[col]))
            predicted = int(model.classes[col])
            wrong = predicted != int(panels.labels[col])
            title = (
                f"{'✗ ' if wrong else ''}{class_names[predicted]} {model.probabilities[col]:.2f}"
            )
            ax.set_title(title, fontsize=8, color=WRONG if wrong else "black")
            if wrong:
                _mark_wrong(ax)
            _off(ax)
    title = f"CAM of the true class (colormap {panels.colormap}, alpha {panels.alpha:g})"
    fig.suptitle(title, fontsize=10)
    return fig


def top_k_grid(panels: Panels, models: Sequence[ModelMaps]) -> Figure:
    """One row per (image, model): the original, then the CAMs of the model's top-k
    predicted classes with their probabilities (the true class underlined by a frame)."""
    k = models[0].classes.shape[1]
    images, labels, class_names = panels.images, panels.labels, panels.class_names
    rows = [(i, m) for i in range(len(images)) for m in models]
    fig, axes = panel_grid(len(rows), 1 + k, width=1.9, height=2.0)
    for row, (i, model) in enumerate(rows):
        ax = axes[row][0]
        ax.imshow(images[i].transpose(1, 2, 0).squeeze())
        ax.set_title(f"true: {class_names[labels[i]]}", fontsize=8)
        ax.set_ylabel(model.name, fontsize=8)
        _off(ax)
        for j in range(k):
            ax = axes[row][1 + j]
            cls = int(model.classes[i, j])
            ax.imshow(panels.blend(i, model.maps[i, j]))
            ax.set_title(f"#{j + 1} {class_names[cls]} {model.probabilities[i, j]:.2f}", fontsize=8)
            if cls == int(labels[i]):
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:green")
                    spine.set_linewidth(3)
            _off(ax)
    fig.suptitle(f"CAMs of the top-{k} predicted classes", fontsize=10)
    return fig


def methods_grid(panels: Panels, rows: Sequence[tuple[str, str, np.ndarray]]) -> Figure:
    """Columns: one image per class; row 1 the images (true box in white), then one row
    per (model, method, N x H x W maps of the true class), grouped by model."""
    names = [(f"{model}\n{method}", 8) for model, method, _ in rows]
    fig, axes = _originals_grid(panels, names, (1.7, 1.75))
    for col in range(len(panels.images)):
        for row, (_, _, maps) in enumerate(rows, start=1):
            axes[row][col].imshow(panels.blend(col, maps[col]))
            _off(axes[row][col])
    fig.suptitle("Saliency of the true class, by model and method", fontsize=10)
    return fig
