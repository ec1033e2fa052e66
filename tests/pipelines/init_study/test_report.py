"""The initialisation study's report and dataset analysis, on two seeds of a 1-epoch run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cnn_lab.evaluation.claims import NOT_MEASURED
from tests.pipelines.init_study.test_pipeline import TINY
from tests.pipelines.report_checks import (
    check_analysis,
    check_best_confusion,
    check_claims_file,
    claim_verdicts,
    latest,
    read_report,
)


def test_two_seed_report(run_kedro, kedro_project: Path) -> None:
    run_kedro(["init_study"], {**TINY, "init_study.seeds": [0, 1]})
    reporting = kedro_project / "data/08_reporting/init_study"
    html, markdown, parsed = read_report(kedro_project, "init_study")
    assert len(parsed.images) == 5 + 1 + 3  # study figures, confusion, dataset analysis

    summary = pd.read_csv(latest(reporting, "summary.csv"))
    assert len(summary) == 12 and sorted(set(summary["seed"])) == [0, 1]
    for run, rows in summary.groupby("run"):
        accuracy = rows["final_test_accuracy"]
        assert rows["final_test_accuracy_mean"].iloc[0] == accuracy.mean(), run
        assert abs(rows["final_test_accuracy_std"].iloc[0] - accuracy.std()) < 1e-12, run
        assert (rows["seeds"] == 2).all()
    for accuracy in summary["final_test_accuracy"]:
        assert f"{accuracy:.4f}" in html and f"{accuracy:.4f}" in markdown
    # The finding quotes the table's mean and std, and judges the gap against the spread.
    dt = summary[summary["run"] == "NetA1-DT"].iloc[0]
    hf = summary[summary["run"] == "NetA1-HF"].iloc[0]
    gap = hf["final_test_accuracy_mean"] - dt["final_test_accuracy_mean"]
    assert (
        f"NetA1-HF (by-hand 0/1 kernels, frozen) minus NetA1-DT: final test accuracy {gap:+.4f} "
        f"({hf['final_test_accuracy_mean']:.4f} ± {hf['final_test_accuracy_std']:.4f} over 2 "
        f"seeds" in markdown
    )
    assert "the seed-to-seed spread (sum of the stds" in markdown
    assert "init_study.seeds" in markdown  # a parameter changed from conf/base
    # Every run of the report's claims ran: each is judged, against two seeds' spread.
    verdicts = claim_verdicts(markdown, html, "init_study")
    assert NOT_MEASURED not in verdicts
    check_claims_file(kedro_project, "init_study", verdicts)
    assert "on digits: max_test_accuracy: NetA1-DT" in markdown
    check_best_confusion(markdown, html)

    # Each seed starts from its own draw; within a seed the runs share theirs.
    differences = pd.read_csv(latest(reporting, "initial_differences.csv"))
    assert sorted(set(differences["seed"])) == [0, 1] and differences["identical"].all()
    models = kedro_project / "data/06_models/init_study/net_a1"
    assert (models / "dt_s0").is_dir() and (models / "dt_s1").is_dir()

    split = json.loads(
        latest(kedro_project / "data/05_model_input/init_study", "split.json").read_text()
    )
    check_analysis(
        kedro_project,
        "init_study",
        {part: len(split[part]) for part in ("train", "val", "test")},
    )
