"""The figure writer of every study's catalog, readable by its report node.

``matplotlib.MatplotlibDataset`` only writes. A study's report embeds every figure of the
run, including those drawn inside training nodes, so the catalog's figure entries use this
subclass: it writes the PNG exactly as before, and loading it returns that PNG as base64
text, ready for the report's ``<img src="data:image/png;base64,...">``. No node has to
return its figures twice.
"""

from __future__ import annotations

from kedro_datasets.matplotlib import MatplotlibDataset


class FigureDataset(MatplotlibDataset):
    """Saves a matplotlib Figure as PNG; loads the saved PNG (this run's version) as base64."""

    def load(self) -> str:  # type: ignore[override]
        return str(self.preview())
