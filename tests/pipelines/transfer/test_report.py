"""The transfer study's report, repeated seeds and both tasks' dataset analyses, on two
seeds of the tiny run of the end-to-end test."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cnn_lab.evaluation.claims import NOT_MEASURED, OTHER_ENV
from tests.pipelines.report_checks import (
    check_analysis,
    check_best_confusion,
    claim_verdicts,
    latest,
    read_report,
)
from tests.pipelines.transfer.test_pipeline import TINY


def test_two_seed_report_compares_baseline_and_fine_tuning(run_kedro, kedro_project: Path) -> None:
    # One optimizer (the end-to-end test has two) keeps the two-seed run short.
    run_kedro(
        ["transfer"], {**TINY, "transfer.seeds": [0, 1], "transfer.optimizers.names": ["adam"]}
    )
    html, markdown, parsed = read_report(kedro_project, "transfer")
    # study + search + the best run's confusion matrix + two dataset analyses
    assert len(parsed.images) == 3 + 3 + 1 + 2 * 3
    check_best_confusion(markdown, html)

    summary = pd.read_csv(latest(kedro_project / "data/08_reporting/transfer", "summary.csv"))
    # Baselines and the search once (on seed 0); every fine-tuning run once per seed.
    runs = [(a, s) for a, s in zip(summary["approach"], summary["seed"], strict=True)]
    repeated = ["head", "all", "adam_lr3e-03", "tuned"]
    assert runs == [("svm", 0), ("logistic", 0)] + [(a, s) for s in (0, 1) for a in repeated]
    assert summary["mlflow_run_id"].is_unique
    for accuracy in summary["test_accuracy"]:
        assert f"{accuracy:.4f}" in html and f"{accuracy:.4f}" in markdown
    by_approach = summary.groupby("approach", sort=False)
    for metric in ("val_accuracy", "test_accuracy", "train_seconds"):
        assert summary[f"{metric}_mean"].tolist() == pytest.approx(
            by_approach[metric].transform("mean").tolist()
        )
        assert summary[f"{metric}_std"].tolist() == pytest.approx(
            by_approach[metric].transform("std").tolist(), nan_ok=True
        )
    assert summary.set_index("approach")["seeds"].to_dict() == {
        "svm": 1,
        "logistic": 1,
        **dict.fromkeys(repeated, 2),
    }
    assert "mean and std across seeds" in markdown
    # The confusion matrix is drawn from the test predictions the one test evaluation kept:
    # every fine-tuning run's, scoring exactly the summary's test accuracy.
    output = kedro_project / "data/07_model_output/transfer"
    scored = json.loads(latest(output, "test_predictions.json").read_text())
    tuned = summary[summary["group"] != "baseline"]
    assert [r["variant"] for r in scored] == [
        f"{a}_s{s}" for a, s in zip(tuned["approach"], tuned["seed"], strict=True)
    ]
    for result, accuracy in zip(scored, tuned["test_accuracy"], strict=True):
        labels = result["test_labels"]
        hits = [t == p for t, p in zip(labels["true"], labels["predicted"], strict=True)]
        assert sum(hits) / len(hits) == pytest.approx(accuracy)
        assert labels["classes"] == ["5", "6", "7", "8", "9"]
    for model in ("head_s0", "head_s1"):
        assert (kedro_project / "data/06_models/transfer/finetune" / model).is_dir(), model

    # The headline: each best chosen by (mean) validation accuracy, compared on the test
    # set, the gap judged against the fine-tuning runs' seed-to-seed std.
    means = summary.drop_duplicates("approach").set_index("approach")
    baselines, presets = (means[means["group"] == g] for g in ("baseline", "finetune"))
    baseline = baselines["val_accuracy_mean"].idxmax()
    preset = presets["val_accuracy_mean"].idxmax()
    gap = means.loc[preset, "test_accuracy_mean"] - means.loc[baseline, "test_accuracy_mean"]
    assert (
        f"best baseline on frozen features (by validation accuracy): {baseline}, "
        f"test accuracy {means.loc[baseline, 'test_accuracy']:.4f}, fitted in"
    ) in markdown
    assert (
        f"best fine-tuning preset (by validation accuracy, mean over seeds): {preset}, test "
        f"accuracy {means.loc[preset, 'test_accuracy_mean']:.4f} ± "
        f"{means.loc[preset, 'test_accuracy_std']:.4f} over 2 seeds"
    ) in markdown
    verdict = "exceeds" if abs(gap) > means.loc[preset, "test_accuracy_std"] else "does not exceed"
    sentence = (
        f"fine-tuning ({preset}) minus the baseline ({baseline}): test accuracy {gap:+.4f}, at "
    )
    assert sentence in markdown
    assert f"times the training time, which {verdict} the seed-to-seed std" in markdown
    assert "fine-tuning presets: " in markdown and "the seed-to-seed spread" in markdown
    assert "digits[0,1,2,3,4] → digits[5,6,7,8,9]" in markdown
    # The lab's CIFAR-100 numbers are not judged on digits; its comparisons are.
    verdicts = claim_verdicts(markdown, html, "transfer")
    # The CIFAR-100 numbers are checked with --env=paper only; the rankings are judged.
    assert [verdicts[i] for i in (0, 2, 5)] == [OTHER_ENV] * 3
    assert NOT_MEASURED not in verdicts
    assert "checked with --env=paper, the lab's setting (this run: on digits" in markdown
    # The tuned model against the best untuned run, said plainly either way.
    untuned = means[means["group"].isin(["finetune", "optimizers"])]
    best_untuned = untuned["val_accuracy_mean"].idxmax()
    beat = means.loc["tuned", "val_accuracy_mean"] > untuned["val_accuracy_mean"].max()
    verdict = "tuning beat the best untuned run" if beat else "tuning did not beat the best"
    assert verdict in markdown and best_untuned in markdown.split(verdict)[1].split("\n")[0]

    # Both tasks are analysed, each under its own folder.
    split_files = kedro_project / "data/05_model_input/transfer"
    for part in ("source", "target"):
        split = json.loads(latest(split_files, f"{part}_split.json").read_text())
        counts = {name: len(split[name]) for name in ("train", "val", "test")}
        check_analysis(kedro_project, "transfer", counts, part=part)
        assert f"{part} data: images per class and split" in markdown
