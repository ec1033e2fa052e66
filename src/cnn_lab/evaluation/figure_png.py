"""One PNG rendering per figure, shared by every place a figure goes.

A study's figure is written to the run's folder, logged to MLflow and embedded in the
report. Rendering the wide multi-panel figures costs 0.5-2 s each on a laptop CPU, so the
bytes of the first rendering are kept (per figure and dpi) and reused by the others: this
took 9-13 s off every default ``cnn_depth`` run. A figure must be finished before it is first
handed on; every plotting function here returns finished figures.
"""

from __future__ import annotations

import io
from weakref import WeakKeyDictionary

from matplotlib.figure import Figure

FIGURE_DPI = 100

_rendered: WeakKeyDictionary[Figure, dict[float, bytes]] = WeakKeyDictionary()


def png_bytes(figure: Figure, dpi: float = FIGURE_DPI) -> bytes:
    """The figure as PNG, rendered once per dpi while the figure lives."""
    by_dpi = _rendered.setdefault(figure, {})
    if dpi not in by_dpi:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi)
        by_dpi[dpi] = buffer.getvalue()
    return by_dpi[dpi]
