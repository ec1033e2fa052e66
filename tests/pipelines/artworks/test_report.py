"""The artworks study's report and dataset analysis (read through the decoded-image
store), on the tiny fake download with two variants."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.pipelines.artworks.fake_download import make_download
from tests.pipelines.artworks.test_pipeline import checkpoint, tiny  # noqa: F401
from tests.pipelines.report_checks import check_analysis, latest, read_report


def test_report_states_the_best_variant_against_chance(
    run_kedro,
    kedro_project: Path,
    checkpoint: Path,  # noqa: F811
) -> None:
    make_download(kedro_project / "data/01_raw/artworks")
    params = {**tiny(kedro_project, checkpoint), "artworks.run": ["scratch", "freeze_1_4"]}
    run_kedro(["artworks"], params)
    html, markdown, parsed = read_report(kedro_project, "artworks")
    # class counts + comparison, two figures per variant, dataset analysis
    assert len(parsed.images) == 2 + 2 * 2 + 3

    summary = pd.read_csv(latest(kedro_project / "data/08_reporting/artworks", "summary.csv"))
    for column in ("test_accuracy", "test_macro_f1", "test_balanced_accuracy"):
        for value in summary[column]:
            assert f"{value:.4f}" in html and f"{value:.4f}" in markdown, column
    best = summary.sort_values("test_macro_f1", ascending=False, kind="stable").iloc[0]
    assert (
        f"best variant by test macro-F1: {best['variant']} ({best['description']}): macro-F1 "
        f"{best['test_macro_f1']:.4f}, accuracy {best['test_accuracy']:.4f}"
    ) in markdown
    assert "chance for 3 artists is 1/K = 0.3333" in markdown
    assert "unreadable image skipped:" in markdown and "Vincent_van_Gogh_11.jpg" in markdown

    # The analysis read the decoded store: its counts are the split's, by artist.
    split = json.loads((kedro_project / "data/05_model_input/artworks/split.json").read_text())
    check_analysis(
        kedro_project, "artworks", {part: len(split[part]) for part in ("train", "val", "test")}
    )
    counts = pd.read_csv(
        latest(kedro_project / "data/08_reporting/artworks/analysis", "class_counts.csv")
    )
    assert sorted(counts["class"]) == ["Albrecht Dürer", "Frida Kahlo", "Vincent van Gogh"]
