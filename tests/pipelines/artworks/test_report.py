"""The artworks study's report, repeated seeds and dataset analysis (read through the
decoded-image store), on the tiny fake download with two variants and two seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cnn_lab.evaluation.claims import NOT_MEASURED
from tests.pipelines.artworks.fake_download import make_download
from tests.pipelines.artworks.test_pipeline import checkpoint, tiny  # noqa: F401
from tests.pipelines.report_checks import (
    check_analysis,
    check_best_confusion,
    claim_verdicts,
    latest,
    read_report,
)


def test_two_seed_report_states_the_best_variant_against_chance(
    run_kedro,
    kedro_project: Path,
    checkpoint: Path,  # noqa: F811
) -> None:
    make_download(kedro_project / "data/01_raw/artworks")
    params = {
        **tiny(kedro_project, checkpoint),
        "artworks.run": ["scratch", "freeze_1_4"],
        "artworks.seeds": [0, 1],
    }
    run_kedro(["artworks"], params)
    html, markdown, parsed = read_report(kedro_project, "artworks")
    # class counts + comparison, two figures per variant (first seed), dataset analysis
    assert len(parsed.images) == 2 + 2 * 2 + 1 + 3

    summary = pd.read_csv(latest(kedro_project / "data/08_reporting/artworks", "summary.csv"))
    assert list(zip(summary["variant"], summary["seed"], strict=True)) == [
        ("scratch", 0),
        ("scratch", 1),
        ("freeze_1_4", 0),
        ("freeze_1_4", 1),
    ]
    assert summary["mlflow_run_id"].is_unique
    for column in ("test_accuracy", "test_macro_f1", "test_balanced_accuracy"):
        for value in summary[column]:
            assert f"{value:.4f}" in html and f"{value:.4f}" in markdown, column
        by_variant = summary.groupby("variant")[column]
        assert summary[f"{column}_mean"].tolist() == pytest.approx(
            by_variant.transform("mean").tolist()
        )
        assert summary[f"{column}_std"].tolist() == pytest.approx(
            by_variant.transform("std").tolist()
        )
    assert (summary["seeds"] == 2).all()
    means = summary.drop_duplicates("variant").set_index("variant")
    best = means.sort_values("test_macro_f1_mean", ascending=False, kind="stable").iloc[0]
    other = means.drop(best.name).iloc[0]
    assert (
        f"best variant by test macro-F1 (mean over seeds): {best.name} ({best['description']}): "
        f"macro-F1 {best['test_macro_f1_mean']:.4f} ± {best['test_macro_f1_std']:.4f} over 2 "
        f"seeds, accuracy {best['test_accuracy_mean']:.4f} ± {best['test_accuracy_std']:.4f}"
    ) in markdown
    gap = other["test_macro_f1_mean"] - best["test_macro_f1_mean"]
    spread = best["test_macro_f1_std"] + other["test_macro_f1_std"]
    verdict = "exceeds" if abs(gap) > spread else "does not exceed"
    assert (
        f"{other.name}: macro-F1 {other['test_macro_f1_mean']:.4f} ± "
        f"{other['test_macro_f1_std']:.4f} over 2 seeds ({gap:+.4f} vs {best.name}, which "
        f"{verdict} the seed-to-seed spread (sum of the stds {spread:.4f}))"
    ) in markdown
    assert "mean and std across seeds (test split)" in markdown
    for model in ("scratch_s0", "scratch_s1", "freeze_1_4_s0", "freeze_1_4_s1"):
        assert (kedro_project / "data/06_models/artworks" / model / "weights.pt").is_dir(), model
    assert "chance for 3 artists is 1/K = 0.3333" in markdown
    # Every claim of the lab is about the finetune variant, which this run left out.
    assert claim_verdicts(markdown, html, "artworks") == [NOT_MEASURED] * 3
    assert "variant finetune was not in this run's summary" in markdown
    check_best_confusion(markdown, html)
    assert "unreadable image skipped:" in markdown and "Vincent_van_Gogh_11.jpg" in markdown

    # The analysis read the decoded store: its counts are the split's, by artist.
    split = json.loads(
        latest(kedro_project / "data/05_model_input/artworks", "split.json").read_text()
    )
    check_analysis(
        kedro_project, "artworks", {part: len(split[part]) for part in ("train", "val", "test")}
    )
    counts = pd.read_csv(
        latest(kedro_project / "data/08_reporting/artworks/analysis", "class_counts.csv")
    )
    assert sorted(counts["class"]) == ["Albrecht Dürer", "Frida Kahlo", "Vincent van Gogh"]
