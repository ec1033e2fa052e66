"""The CAM study's report and dataset analysis, on the tiny run of the end-to-end test."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.pipelines.cam.test_pipeline import TINY
from tests.pipelines.report_checks import check_analysis, latest, read_report


def test_report_states_localisation_against_chance(run_kedro, kedro_project: Path) -> None:
    run_kedro(["cam"], TINY)
    html, markdown, parsed = read_report(kedro_project, "cam")
    assert len(parsed.images) == 2 + 3  # CAM grids + dataset analysis

    table = pd.read_csv(latest(kedro_project / "data/08_reporting/cam", "localisation.csv"))
    rows = table.set_index("method")
    for column in ("localisation", "pointing_game", "mean_iou"):
        for value in table[column]:
            assert f"{value:.4f}" in html and f"{value:.4f}" in markdown, column
    small = rows.loc["small_cnn"]
    assert (
        f"small_cnn (CAMs of layer features): localisation {small['localisation']:.4f} of 12 "
        f"test images (CAM box IoU >= 0.5 with the object's box) vs "
        f"{rows.loc['chance_uniform', 'localisation']:.4f} for the uniform chance map, "
        f"{rows.loc['chance_centred', 'localisation']:.4f} for the centred chance map"
    ) in markdown
    assert f"test accuracy {small['accuracy']:.4f}" in markdown
    assert "['circle', 'square', 'cross']" in markdown  # a changed list parameter, unescaped

    split = json.loads((kedro_project / "data/05_model_input/cam/split.json").read_text())
    assert split["test"] == "official"  # the generated test set: shapes.test_size images
    counts = {"train": len(split["train"]), "val": len(split["val"]), "test": 12}
    check_analysis(kedro_project, "cam", counts)
