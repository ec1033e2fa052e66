"""The depth study's report and repeated seeds, on a 1-epoch, depth-2 run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cnn_lab.evaluation.claims import NOT_MEASURED, OTHER_ENV
from tests.conftest import mlflow_runs
from tests.pipelines.cnn_depth.test_pipeline import TINY, _latest
from tests.pipelines.report_checks import (
    Collect,
    check_best_confusion,
    check_claims_file,
    claim_verdicts,
)

FAST_ANALYSIS = {"dataset_analysis.subsample": 60, "dataset_analysis.perplexity": 5}


def test_report_states_the_run(run_kedro, kedro_project: Path) -> None:
    run_kedro(["cnn_depth"], {**TINY, **FAST_ANALYSIS})
    reporting = kedro_project / "data/08_reporting/cnn_depth"
    html = _latest(reporting, "report.html").read_text(encoding="utf-8")
    markdown = _latest(reporting, "report.md").read_text(encoding="utf-8")

    parsed = Collect()
    parsed.feed(html)
    assert {"html", "body", "table", "img"} <= set(parsed.tags)
    # Self-contained: every figure is embedded, nothing is fetched.
    assert parsed.images and all(s.startswith("data:image/png;base64,") for s in parsed.images)
    assert len(parsed.images) == 5 + 1 + 3  # study figures, confusion, dataset analysis

    _, runs = mlflow_runs(kedro_project)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.run_id in html and parent.info.run_id in markdown

    summary = pd.read_csv(_latest(reporting, "summary.csv"))
    for accuracy in summary["test_accuracy"]:
        assert f"{accuracy:.4f}" in html
        assert f"{accuracy:.4f}" in markdown
    deepest = summary[summary["family"] == "resmlp"]["test_accuracy"].iloc[0]
    assert f"resmlp {deepest:.4f}" in markdown  # the finding quotes the table's number
    assert "cnn_depth.training.epochs" in markdown  # a parameter changed from conf/base
    assert "first-layer gradient norm" in markdown
    # The lab's claims are about depths 8-56: none is in this depth-2 grid; the numeric
    # ones are checked with --env=paper / paper_cnn only.
    verdicts = claim_verdicts(markdown, html, "cnn_depth")
    assert (
        verdicts
        == [NOT_MEASURED] * 2 + [OTHER_ENV] + [NOT_MEASURED] * 2 + [OTHER_ENV] + [NOT_MEASURED] * 2
    )
    check_claims_file(kedro_project, "cnn_depth", verdicts)
    assert "depth 32 was not in this run's summary among the rows with family mlp" in markdown
    check_best_confusion(markdown, html)

    artifacts = {
        a.path for a in mlflow_runs(kedro_project)[0].list_artifacts(parent.info.run_id, "report")
    }
    assert artifacts == {"report/report.html", "report/report.md"}


def test_two_seeds_give_mean_and_std(run_kedro, kedro_project: Path) -> None:
    params = {
        **TINY,
        **FAST_ANALYSIS,
        "cnn_depth.seeds": [0, 1],
        "cnn_depth.groups.mlp.families": ["mlp", "resmlp"],
    }
    run_kedro(["cnn_depth"], params)
    reporting = kedro_project / "data/08_reporting/cnn_depth"
    summary = pd.read_csv(_latest(reporting, "summary.csv"))
    assert sorted(summary["variant"]) == ["mlp_d2_s0", "mlp_d2_s1", "resmlp_d2_s0", "resmlp_d2_s1"]
    for family, rows in summary.groupby("family"):
        accuracies = rows["test_accuracy"]
        assert rows["test_accuracy_mean"].iloc[0] == accuracies.mean(), family
        assert abs(rows["test_accuracy_std"].iloc[0] - accuracies.std()) < 1e-12, family
        assert (rows["seeds"] == 2).all()
    markdown = _latest(reporting, "report.md").read_text(encoding="utf-8")
    assert "seed-to-seed spread (sum of the stds" in markdown


def test_override_a_group_does_not_see_is_logged_and_reported(
    run_kedro, kedro_project: Path, caplog
) -> None:
    import logging

    params = {
        **FAST_ANALYSIS,
        "cnn_depth.groups.mlp.depths": [2],
        "cnn_depth.groups.mlp.families": ["mlp"],
        "cnn_depth.groups.mlp.model.width": 16,
        "cnn_depth.groups.cnn.families": ["cnn"],
        "cnn_depth.groups.cnn.depths": [4],
        "cnn_depth.groups.cnn.image_size": 8,
        "cnn_depth.groups.cnn.model.width": 4,
        "cnn_depth.groups.cnn.training.step_size": 1,  # reaches only the cnn group: no warning
        "cnn_depth.training.epochs": 1,  # conf/base's cnn group keeps its own epochs: 8
    }
    with caplog.at_level(logging.WARNING):
        run_kedro(["cnn_depth"], params)
    warning = (
        "--params cnn_depth.training.epochs=1 does not reach group(s) cnn (epochs=8): they set "
        "training.epochs themselves; override cnn_depth.groups.cnn.training.epochs as well"
    )
    assert warning in caplog.text
    assert "step_size" not in caplog.text

    reporting = kedro_project / "data/08_reporting/cnn_depth"
    markdown = _latest(reporting, "report.md").read_text(encoding="utf-8")
    what_ran = markdown.split("## Findings")[0]
    mlp_line = next(line for line in what_ran.splitlines() if "training of group mlp" in line)
    cnn_line = next(line for line in what_ran.splitlines() if "training of group cnn" in line)
    assert "epochs 1," in mlp_line and "step_size 10," in mlp_line
    assert "epochs 8," in cnn_line and "step_size 1," in cnn_line
    assert warning in markdown  # listed under "Diverged or skipped" too
    summary = pd.read_csv(_latest(reporting, "summary.csv")).set_index("variant")
    assert summary.loc["mlp_d2", "epochs_run"] == 1 and summary.loc["cnn_d4", "epochs_run"] == 8
