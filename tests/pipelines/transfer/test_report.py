"""The transfer study's report and both tasks' dataset analyses, on the tiny run of the
end-to-end test."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.pipelines.report_checks import check_analysis, latest, read_report
from tests.pipelines.transfer.test_pipeline import TINY


def test_report_compares_baseline_and_fine_tuning(run_kedro, kedro_project: Path) -> None:
    run_kedro(["transfer"], TINY)
    html, markdown, parsed = read_report(kedro_project, "transfer")
    assert len(parsed.images) == 3 + 3 + 2 * 3  # study + search + two dataset analyses

    summary = pd.read_csv(latest(kedro_project / "data/08_reporting/transfer", "summary.csv"))
    for accuracy in summary["test_accuracy"]:
        assert f"{accuracy:.4f}" in html and f"{accuracy:.4f}" in markdown
    # The headline: each best chosen by validation accuracy, compared on the test set.
    baselines = summary[summary["group"] == "baseline"]
    presets = summary[summary["group"] == "finetune"]
    baseline = baselines.loc[baselines["val_accuracy"].idxmax()]
    preset = presets.loc[presets["val_accuracy"].idxmax()]
    gap = preset["test_accuracy"] - baseline["test_accuracy"]
    assert (
        f"best baseline on frozen features (by validation accuracy): {baseline['approach']}, "
        f"test accuracy {baseline['test_accuracy']:.4f}"
    ) in markdown
    assert (
        f"best fine-tuning preset (by validation accuracy): {preset['approach']}, test "
        f"accuracy {preset['test_accuracy']:.4f}"
    ) in markdown
    assert (
        f"fine-tuning ({preset['approach']}) minus the baseline ({baseline['approach']}): "
        f"test accuracy {gap:+.4f}"
    ) in markdown
    assert "digits[0,1,2,3,4] → digits[5,6,7,8,9]" in markdown

    # Both tasks are analysed, each under its own folder.
    split_files = kedro_project / "data/05_model_input/transfer"
    for part in ("source", "target"):
        split = json.loads((split_files / f"{part}_split.json").read_text())
        counts = {name: len(split[name]) for name in ("train", "val", "test")}
        check_analysis(kedro_project, "transfer", counts, part=part)
        assert f"{part} data: images per class and split" in markdown
