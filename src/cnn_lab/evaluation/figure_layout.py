"""How big a figure may be so that its text stays readable in the report.

The report shows each figure's PNG at its natural size, shrunk to the page's width when wider
(``figure img { max-width: 100% }`` in a body ``PAGE_WIDTH_PX`` wide). A figure of ``w``
inches rendered at ``FIGURE_DPI`` is therefore shown at ``min(1, PAGE_WIDTH_PX / (w * dpi))``
of its size, and a font of ``p`` points at ``p * dpi / 72`` times that many pixels. The rule
every figure here follows: no wider than the page (so nothing is shrunk) and no text under
``MIN_TEXT_PX`` (7.2 pt at 100 dpi: matplotlib's ``"small"`` passes, ``"x-small"`` does not).
Panels that would not fit side by side wrap into bands (:func:`panel_grid`).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows

import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from cnn_lab.evaluation.figure_png import FIGURE_DPI, png_bytes  # noqa: E402

PAGE_WIDTH_PX = 1100  # the report body's content width (report.html.j2 reads it from here)
PAGE_WIDTH_IN = PAGE_WIDTH_PX / FIGURE_DPI
MIN_TEXT_PX = 10.0


def panel_grid(
    rows: int,
    columns: int,
    *,
    width: float,
    height: float,
    layout: str | None = "constrained",
) -> tuple[Figure, np.ndarray]:
    """A figure of ``rows`` x ``columns`` panels, each ``width`` x ``height`` inches, laid
    out to fit the report's page: columns that would not fit side by side wrap into bands of
    at most as many as fit (balanced: 5 columns that fit 3 to a band wrap as 3 + 2), each
    band repeating the rows. Returns the axes indexed ``[row][column]`` as if unwrapped;
    ``ax.get_subplotspec().is_first_col()`` tells the panels that start a band's row.
    """
    if rows < 1 or columns < 1:
        raise ValueError(f"panel_grid needs at least one row and column, got {rows} x {columns}")
    fit = max(1, math.floor(PAGE_WIDTH_IN / width))
    bands = math.ceil(columns / fit)
    per_band = math.ceil(columns / bands)
    figure_width = min(per_band * width, PAGE_WIDTH_IN)
    # Outside pyplot's registry: a figure is freed once the catalog, MLflow and the report
    # have it, where pyplot would keep every one of a run open (and warn past 20).
    fig = Figure(figsize=(figure_width, height * rows * bands), layout=layout)
    grid = fig.add_gridspec(rows * bands, per_band)
    axes = np.empty((rows, columns), dtype=object)
    for column in range(columns):
        band, place = divmod(column, per_band)
        for row in range(rows):
            axes[row][column] = fig.add_subplot(grid[band * rows + row, place])
    return fig, axes


def text_px(figure: Figure, dpi: float = FIGURE_DPI) -> list[tuple[float, str]]:
    """Every visible, non-empty text of the figure as (height in pixels as the report shows
    it, the text), smallest first. The figure is rendered first (the same cached PNG the
    report embeds), so tick labels and layouts are those of the picture."""
    png_bytes(figure, dpi)
    width_px = figure.get_figwidth() * dpi
    scale = min(1.0, PAGE_WIDTH_PX / width_px)
    found = []
    for text in figure.findobj(Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        if isinstance(text.axes, Axes) and not text.axes.get_visible():
            continue
        found.append((text.get_fontsize() * dpi / 72.0 * scale, text.get_text()))
    return sorted(found, key=lambda item: item[0])
