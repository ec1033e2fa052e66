"""The CAM study's report, repeated seeds and dataset analysis, on two seeds of the tiny
run of the end-to-end test."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.pipelines.cam.test_pipeline import TINY
from tests.pipelines.report_checks import check_analysis, latest, read_report


def test_two_seed_report_states_localisation_against_chance(run_kedro, kedro_project: Path) -> None:
    run_kedro(["cam"], {**TINY, "cam.seeds": [0, 1]})
    html, markdown, parsed = read_report(kedro_project, "cam")
    assert len(parsed.images) == 2 + 3  # CAM grids + dataset analysis

    table = pd.read_csv(latest(kedro_project / "data/08_reporting/cam", "localisation.csv"))
    cams = table[table["kind"] == "cam"]
    assert sorted(zip(cams["method"], cams["seed"], strict=True)) == [
        ("resnet18", 0),
        ("resnet18", 1),
        ("small_cnn", 0),
        ("small_cnn", 1),
    ]
    for column in ("localisation", "pointing_game", "mean_iou", "accuracy"):
        for value in table[column].dropna():
            assert f"{value:.4f}" in html and f"{value:.4f}" in markdown, column
    chance = table[table["kind"] == "chance"].set_index("method")["localisation"]
    small = cams[cams["method"] == "small_cnn"]["localisation"]
    assert (
        f"small_cnn (CAMs of layer features, 12 test images): localisation "
        f"{small.mean():.4f} ± {small.std():.4f} over 2 seeds (share of CAM boxes with IoU >= "
        f"0.5 with the object's box) vs {chance['chance_uniform']:.4f} for the uniform chance "
        f"map, {chance['chance_centred']:.4f} for the centred chance map"
    ) in markdown
    assert "the seed-to-seed std" in markdown
    assert "['circle', 'square', 'cross']" in markdown  # a changed list parameter, unescaped
    for model in ("small_cnn_s0", "small_cnn_s1", "resnet18_s0", "resnet18_s1"):
        assert (kedro_project / "data/06_models/cam" / model / "weights.pt").is_dir(), model

    split = json.loads(latest(kedro_project / "data/05_model_input/cam", "split.json").read_text())
    assert split["test"] == "official"  # the generated test set: shapes.test_size images
    counts = {"train": len(split["train"]), "val": len(split["val"]), "test": 12}
    check_analysis(kedro_project, "cam", counts)
