"""The figure writer of every study's catalog, readable by its report node.

``matplotlib.MatplotlibDataset`` only writes. A study's report embeds every figure of the
run, including those drawn inside training nodes, so the catalog's figure entries use this
subclass: it writes the PNG exactly as before, and loading it returns that PNG as base64
text, ready for the report's ``<img src="data:image/png;base64,...">``. No node has to
return its figures twice.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
from kedro_datasets.matplotlib import MatplotlibDataset
from matplotlib.figure import Figure

from cnn_lab.evaluation.figure_png import FIGURE_DPI, png_bytes


class FigureDataset(MatplotlibDataset):
    """Saves a matplotlib Figure as PNG; loads the saved PNG (this run's version) as base64.

    With no ``save_args`` but ``dpi`` the PNG is the one MLflow and the report get too
    (:mod:`cnn_lab.evaluation.figure_png`), not a third rendering.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._save_args.setdefault("dpi", FIGURE_DPI)

    def _save_to_fs(self, full_key_path: str, plot: Figure) -> None:
        other_options = set(self._save_args) - {"dpi", "format"}
        if other_options or self._save_args.get("format", "png") != "png":
            super()._save_to_fs(full_key_path, plot)  # other savefig options: render them
        else:
            with self._fs.open(full_key_path, **self._fs_open_args_save) as handle:
                handle.write(png_bytes(plot, self._save_args["dpi"]))
        # Written, logged and rendered once: pyplot's registry would otherwise keep every
        # figure of the run open (memory, and its "more than 20 figures" warning).
        plt.close(plot)

    def load(self) -> str:  # type: ignore[override]
        return str(self.preview())
