"""The report's reading order: a headline table first, the full tables folded below it
without columns that say nothing, and every figure captioned in words."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cnn_lab.evaluation.figure_layout import PAGE_WIDTH_PX
from cnn_lab.evaluation.report import Report, caption, headline, render, tidy


def seeded_summary() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "variant": ["mlp_d32_s0", "mlp_d32_s1", "resmlp_d32_s0", "resmlp_d32_s1"],
            "seed": [0, 1, 0, 1],
            "parameters": [504970] * 4,
            "test_accuracy": [0.10, 0.12, 0.95, 0.97],
            "train_seconds": [10.0, 12.0, 11.0, 13.0],
            "diverged_epoch": [np.nan] * 4,
        }
    )


def test_headline_gives_mean_and_spread_over_seeds_best_first() -> None:
    table = headline(seeded_summary())
    assert list(table.columns) == [
        "variant",
        "parameters",
        "test accuracy",
        "seeds",
        "train seconds",
    ]
    assert table["variant"].tolist() == ["resmlp_d32", "mlp_d32"]
    # mean 0.96, sample standard deviation of (0.95, 0.97) = 0.0141
    assert table["test accuracy"].tolist() == ["0.9600 ± 0.0141", "0.1100 ± 0.0141"]
    assert table["train seconds"].tolist() == ["12.0", "11.0"]
    one_seed = headline(seeded_summary().query("seed == 0"))
    assert "seeds" not in one_seed and one_seed["test accuracy"].tolist() == ["0.9500", "0.1000"]
    assert headline(pd.DataFrame({"variant": ["a"], "loss": [1.0]})) is None


def test_tidy_drops_empty_and_repeated_columns() -> None:
    frame = (
        seeded_summary()
        .query("seed == 0")
        .assign(test_accuracy_mean=lambda f: f["test_accuracy"], test_accuracy_std=np.nan, note="")
    )
    assert list(tidy(frame).columns) == [
        "variant",
        "seed",
        "parameters",
        "test_accuracy",
        "train_seconds",
    ]


def test_report_opens_with_results_and_captions_its_figures() -> None:
    report = Report(
        study="cnn_depth",
        env="local",
        dataset="digits",
        split_sizes={"train": 3, "val": 1, "test": 1},
        device="cpu",
        precision="fp32",
        git_commit=None,
        mlflow_run_id=None,
        tables={"summary": seeded_summary()},
        figures={"loss_curves": "AAAA", "my_custom_plot": "AAAA"},
    )
    html, markdown = render(report)
    assert html.index("<h2>Results</h2>") < html.index("<h2>Tables</h2>")
    assert "<details>\n<summary>summary</summary>" in html
    assert "diverged_epoch" not in html.split("<h2>Tables</h2>")[1]
    assert caption("loss_curves") in html and "My custom plot" in html
    assert "@media print" in html
    # The page is as wide as the figures are drawn for (their text then shows at >= 10 px).
    assert f"max-width: {PAGE_WIDTH_PX}px" in html
    assert "## Results" in markdown and "| resmlp_d32 | 504970 | 0.9600 ± 0.0141 |" in markdown
    assert caption("cnn_depth.gradient_norms").startswith("Weight-gradient norm")
