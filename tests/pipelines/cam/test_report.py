"""The CAM study's report, repeated seeds and dataset analysis, on two seeds of the tiny
run of the end-to-end test."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cnn_lab.evaluation.claims import NOT_MEASURED, OTHER_ENV
from tests.pipelines.cam.test_pipeline import TINY
from tests.pipelines.report_checks import (
    check_analysis,
    check_best_confusion,
    check_claims_file,
    claim_verdicts,
    latest,
    read_report,
)


def test_two_seed_report_states_localisation_against_chance(run_kedro, kedro_project: Path) -> None:
    run_kedro(["cam"], {**TINY, "cam.seeds": [0, 1]})
    html, markdown, parsed = read_report(kedro_project, "cam")
    assert len(parsed.images) == 3 + 1 + 3  # CAM figures, confusion, dataset analysis

    table = pd.read_csv(latest(kedro_project / "data/08_reporting/cam", "localisation.csv"))
    cams = table[table["method"] == "cam"]
    assert sorted(zip(cams["model"], cams["seed"], strict=True)) == [
        ("resnet18", 0),
        ("resnet18", 1),
        ("small_cnn", 0),
        ("small_cnn", 1),
    ]
    for column in ("localisation", "pointing_game", "mean_iou", "accuracy", "deletion_auc"):
        for value in table[column].dropna():
            assert f"{value:.4f}" in html and f"{value:.4f}" in markdown, column
    small = table[table["model"] == "small_cnn"]
    local = small[small["kind"] == "saliency"].groupby("method")["localisation"]
    best = local.mean().sort_values(ascending=False, kind="stable").index[0]
    best_values = small[small["method"] == best]["localisation"]
    assert (
        f"small_cnn (12 test images): best localisation by {best}, "
        f"{best_values.mean():.4f} ± {best_values.std():.4f} over 2 seeds"
    ) in markdown
    assert "small_cnn faithfulness: lowest deletion AUC" in markdown
    # Shapes have boxes: the localisation and accuracy claims are judged; the lab's
    # Imagenette accuracies are checked with --env=paper only.
    verdicts = claim_verdicts(markdown, html, "cam")
    assert NOT_MEASURED not in verdicts and verdicts[3:] == [OTHER_ENV] * 2
    check_claims_file(kedro_project, "cam", verdicts)
    check_best_confusion(markdown, html)
    assert "the seed-to-seed std" in markdown
    assert "['circle', 'square', 'cross']" in markdown  # a changed list parameter, unescaped
    for model in ("small_cnn_s0", "small_cnn_s1", "resnet18_s0", "resnet18_s1"):
        assert (kedro_project / "data/06_models/cam" / model / "weights.pt").is_dir(), model

    split = json.loads(latest(kedro_project / "data/05_model_input/cam", "split.json").read_text())
    assert split["test"] == "official"  # the generated test set: shapes.test_size images
    counts = {"train": len(split["train"]), "val": len(split["val"]), "test": 12}
    check_analysis(kedro_project, "cam", counts)
