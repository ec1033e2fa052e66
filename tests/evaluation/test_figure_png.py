"""A figure is rendered once and the same PNG reaches the run's folder, MLflow and the
report."""

from __future__ import annotations

import base64
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import pytest  # noqa: E402

from cnn_lab.evaluation.figure_png import FIGURE_DPI, png_bytes  # noqa: E402
from cnn_lab.evaluation.report import encode_figure  # noqa: E402
from cnn_lab.runtime.figure_dataset import FigureDataset  # noqa: E402
from cnn_lab.runtime.tracking import log_figures  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def figure():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [2, 0, 1])
    yield fig
    plt.close(fig)


def _count_renders(figure, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []
    original = figure.savefig

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(figure, "savefig", counting)
    return calls


def test_every_sink_gets_the_same_png_from_one_rendering(
    figure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders = _count_renders(figure, monkeypatch)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # undone after the test
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)  # no active experiment set: other tests keep theirs
    created = client.create_run(client.create_experiment("figures"))
    with mlflow.start_run(run_id=created.info.run_id) as run:
        log_figures({"curve": figure})
    dataset = FigureDataset(filepath=str(tmp_path / "curve.png"))
    dataset.save(figure)
    embedded = base64.b64decode(encode_figure(figure))

    logged = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id)) / "figures"
    written = (tmp_path / "curve.png").read_bytes()
    assert written.startswith(PNG_SIGNATURE)
    assert (logged / "curve.png").read_bytes() == written == embedded
    assert renders == [{"format": "png", "dpi": FIGURE_DPI}]  # once, for all three
    assert dataset.load() == base64.b64encode(written).decode("ascii")  # what reports read


def test_other_dpi_or_savefig_options_render_again(
    figure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders = _count_renders(figure, monkeypatch)
    small = png_bytes(figure, dpi=50)
    assert png_bytes(figure, dpi=50) is small and len(renders) == 1
    FigureDataset(filepath=str(tmp_path / "a.png"), save_args={"dpi": 50}).save(figure)
    assert (tmp_path / "a.png").read_bytes() == small and len(renders) == 1
    tight = FigureDataset(filepath=str(tmp_path / "b.png"), save_args={"bbox_inches": "tight"})
    tight.save(figure)
    assert len(renders) == 2 and renders[1]["bbox_inches"] == "tight"
    assert (tmp_path / "b.png").read_bytes().startswith(PNG_SIGNATURE)


def test_a_saved_figure_leaves_pyplot_so_a_long_run_never_piles_figures_up(
    tmp_path: Path,
) -> None:
    for index in range(25):  # more than pyplot's 20-figure warning
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [index, 0])
        FigureDataset(filepath=str(tmp_path / f"f{index}.png")).save(fig)
        assert fig.number not in plt.get_fignums()
    assert (tmp_path / "f24.png").read_bytes().startswith(PNG_SIGNATURE)
