"""Every figure a study puts in its report has text of at least 10 px at the report's width.

The figures are drawn from small synthetic tables shaped as the studies' default runs shape
theirs (five depth families, ten CAM classes, 18 variants, 50 artists...), and measured as
the report shows them: rendered at the report's dpi, shrunk to the page's width when wider.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from cnn_lab.data.sources import DatasetBundle, LabelledImages
from cnn_lab.evaluation import cam_plots, class_plots, compare, init_plots, plots
from cnn_lab.evaluation.cam_plots import ModelMaps, Panels
from cnn_lab.evaluation.dataset_analysis import analyse_dataset
from cnn_lab.evaluation.figure_layout import MIN_TEXT_PX, PAGE_WIDTH_PX, panel_grid, text_px
from cnn_lab.evaluation.figure_png import FIGURE_DPI

FAMILIES = {"mlp": [4, 8, 16, 32], "mlp_bn": [4, 8, 16, 32], "resmlp": [4, 8, 16, 32]}
FAMILIES |= {"cnn": [4, 8, 16], "rescnn": [4, 8, 16]}
RNG = np.random.default_rng(0)


def _depth_history() -> pd.DataFrame:
    rows = []
    for family, depths in FAMILIES.items():
        for depth in depths:
            for seed in (0, 1):
                for epoch in range(1, 6):
                    row = {"family": family, "depth": depth, "seed": seed, "epoch": epoch}
                    row |= {"train_loss": 2.0 / epoch, "val_loss": 2.1 / epoch}
                    row |= {"val_accuracy": 0.5 + 0.08 * epoch, "test_accuracy": 0.9}
                    row |= {f"grad_norm_{i:02d}": 10.0 ** -(i % 7) for i in range(depth)}
                    rows.append(row)
    return pd.DataFrame(rows)


def _depth_summary() -> pd.DataFrame:
    rows = [
        {"family": f, "depth": d, "seed": s, "test_accuracy": 0.9, "train_seconds": 3.0 + s}
        | {"status": "diverged" if (f, d) == ("mlp", 32) else "ok", "diverged_epoch": 3}
        for f, depths in FAMILIES.items()
        for d in depths
        for s in (0, 1)
    ]
    return pd.DataFrame(rows)


def _images(n: int, side: int = 32) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, 3, side, side), dtype=np.uint8)


IMAGENETTE = ["tench", "English springer", "cassette player", "chain saw", "church"]
IMAGENETTE += ["French horn", "garbage truck", "gas pump", "golf ball", "parachute"]


def _models(n: int, k: int | None = None) -> list[ModelMaps]:
    shape = (n, 32, 32) if k is None else (n, k, 32, 32)
    classes = np.arange(n) if k is None else np.stack([np.arange(k)] * n)
    return [
        ModelMaps(name, RNG.random(shape), classes, np.full(classes.shape, 0.8))
        for name in ("resnet18", "tiny_cnn")
    ]


def _approaches() -> pd.DataFrame:
    names = ["svm", "logistic", "linear_probe", "fine_tune_all", "fine_tune_last", "adamw"]
    return pd.DataFrame(
        [
            {"approach": a, "group": "g", "seed": s, "epoch": e, "train_loss": 1.0 / e}
            | {"val_accuracy": 0.8, "test_accuracy": 0.8}
            for a in names
            for s in (0, 1)
            for e in (1, 2, 3)
        ]
    )


def _init_history() -> pd.DataFrame:
    runs = ["default", "by_hand", "frozen", "by_hand_frozen"]
    return pd.DataFrame(
        [
            {"run": r, "seed": s, "epoch": e, "test_accuracy": 0.9, "train_loss": 1.0 / e}
            | {"seconds_per_batch": 0.01}
            for r in runs
            for s in (0, 1)
            for e in (1, 2, 3)
        ]
    )


ARTISTS = [f"Artist Number {i}" for i in range(50)]

FIGURES: dict[str, Callable[[], Figure]] = {
    "plots.curves_by_depth": lambda: plots.curves_by_depth(_depth_history(), "val_loss", "loss"),
    "plots.gradient_norms_by_layer": lambda: plots.gradient_norms_by_layer(_depth_history()),
    "plots.accuracy_vs_depth": lambda: plots.accuracy_vs_depth(_depth_summary()),
    "plots.training_time": lambda: plots.training_time(_depth_summary()),
    "plots.variant_curves": lambda: plots.variant_curves(_depth_history().head(5), "mlp_d4"),
    "class_plots.class_counts": lambda: class_plots.class_counts(
        pd.DataFrame({"train": range(50), "val": range(50)}, index=ARTISTS)
    ),
    "class_plots.confusion_matrix": lambda: class_plots.confusion_matrix(
        np.eye(50), ARTISTS, "confusion of the best variant"
    ),
    "class_plots.confusion_matrix (10 classes)": lambda: class_plots.confusion_matrix(
        np.eye(10), IMAGENETTE, "confusion"
    ),
    "class_plots.image_grid": lambda: class_plots.image_grid(
        _images(8),
        [f"true {a}\npredicted {b}" for a, b in zip(ARTISTS[:8], ARTISTS[1:9], strict=True)],
        "wrong",
    ),
    "class_plots.compare_variants": lambda: class_plots.compare_variants(
        pd.DataFrame({"variant": ["a", "b", "c"], "accuracy": [0.5] * 3, "f1": [0.4] * 3}),
        ["accuracy", "f1"],
    ),
    "cam_plots.cam_grid": lambda: cam_plots.cam_grid(
        Panels(_images(10), list(range(10)), IMAGENETTE, np.tile([2, 2, 20, 20], (10, 1))),
        _models(10),
    ),
    "cam_plots.top_k_grid": lambda: cam_plots.top_k_grid(
        Panels(_images(3), [0, 1, 2], IMAGENETTE), _models(3, k=3)
    ),
    "cam_plots.methods_grid": lambda: cam_plots.methods_grid(
        Panels(_images(10), list(range(10)), IMAGENETTE),
        [
            (m, method, RNG.random((10, 32, 32)))
            for m in ("resnet18", "tiny")
            for method in ("cam", "gradcam", "scorecam")
        ],
    ),
    "compare.overlaid_curves": lambda: compare.overlaid_curves(_approaches(), "transfer"),
    "compare.accuracy_by_approach": lambda: compare.accuracy_by_approach(_approaches()),
    "init_plots.compare_runs": lambda: init_plots.compare_runs(
        _init_history(),
        {
            "init": ["default", "by_hand"],
            "freeze": ["default", "frozen"],
            "both": ["by_hand", "by_hand_frozen"],
        },
        title="first layer",
    ),
    "init_plots.kernel_grid": lambda: init_plots.kernel_grid(
        {name: torch.randn(16, 1, 3, 3) for name in ("default", "by hand", "frozen")}, "kernels"
    ),
    "init_plots.time_per_batch": lambda: init_plots.time_per_batch(_init_history()),
}


@functools.cache
def _dataset_figures() -> dict[str, Figure]:
    labels = np.repeat(np.arange(10), 6).astype(np.int64)
    bundle = DatasetBundle(
        "tiny", LabelledImages(_images(60, side=8), labels, [f"class {c}" for c in range(10)])
    )
    split = {"train": list(range(0, 60, 2)), "val": list(range(1, 60, 4)), "test": [3, 7]}
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 10))
    analysis = analyse_dataset(bundle, split, subsample=30, perplexity=5, model=model)
    return analysis.figures


for _name in ("class_counts", "samples", "tsne"):
    FIGURES[f"dataset_analysis.{_name}"] = lambda name=_name: _dataset_figures()[name]


@functools.cache
def _search_figures() -> dict[str, Figure]:
    from cnn_lab.training.search import SearchSpace, build_pruner, open_study, run_search
    from tests.training.test_search import _fake_training

    study = open_study("figures", "memory", seed=0, pruner=build_pruner("none"))
    run_search(study, SearchSpace(), _fake_training, n_trials=3)
    from cnn_lab.training.search import search_figures

    return search_figures(study)


for _name in ("optimization_history", "intermediate_values", "param_importances"):
    FIGURES[f"search.{_name}"] = lambda name=_name: _search_figures()[name]


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_text_is_at_least_10_px_at_the_report_width(name: str) -> None:
    figure = FIGURES[name]()
    assert figure.get_figwidth() * FIGURE_DPI <= PAGE_WIDTH_PX, "wider than the report page"
    smallest, text = text_px(figure)[0]
    assert smallest >= MIN_TEXT_PX, f"{name}: {text!r} is {smallest:.1f} px"


def test_every_figure_function_is_measured() -> None:
    """A new plotting function joins FIGURES, or this fails naming it."""
    measured = {key.split(" ")[0] for key in FIGURES}
    for module in (plots, class_plots, cam_plots, compare, init_plots):
        for name, function in inspect.getmembers(module, inspect.isfunction):
            returns = inspect.signature(function).return_annotation
            public = function.__module__ == module.__name__ and not name.startswith("_")
            if public and returns in (Figure, "Figure"):
                assert f"{module.__name__.rsplit('.', 1)[1]}.{name}" in measured, name


def test_panel_grid_wraps_columns_into_bands_that_fit_the_page() -> None:
    fig, axes = panel_grid(2, 5, width=3.5, height=3.0)  # 3 fit side by side: 3 + 2
    assert axes.shape == (2, 5)
    assert fig.get_figwidth() == pytest.approx(3 * 3.5)
    assert fig.get_figheight() == pytest.approx(2 * 2 * 3.0)
    spans = [
        (ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start)
        for ax in axes.ravel()
    ]
    assert spans == [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1), (1, 0), (1, 1), (1, 2), (3, 0), (3, 1)]
    fig, axes = panel_grid(1, 2, width=20.0, height=3.0)  # one panel wider than the page
    assert fig.get_figwidth() * FIGURE_DPI == pytest.approx(PAGE_WIDTH_PX)
    with pytest.raises(ValueError, match="at least one row and column"):
        panel_grid(0, 3, width=3.0, height=3.0)
