"""The cam findings on a hand-made table: which method localises best on which model,
and whether the gap exceeds the seed spread."""

from __future__ import annotations

import pandas as pd

from cnn_lab.evaluation.localisation import seed_table
from cnn_lab.pipelines.cam.findings import cam_findings


def _rows(model: str, method: str, kind: str, values: list[float]) -> list[dict]:
    return [
        {
            "model": model,
            "method": method,
            "kind": kind,
            "seed": seed,
            "accuracy": 0.8,
            "localisation": value,
            "pointing_game": value,
            "mean_iou": value,
            "deletion_auc": 1 - value,
            "insertion_auc": value,
            "ms_per_image": 0.0 if kind == "chance" else 2.0,
            "images": 50,
        }
        for seed, value in enumerate(values)
    ]


def test_best_method_per_model_with_the_seed_spread() -> None:
    table = pd.DataFrame(
        _rows("a", "cam", "saliency", [0.50, 0.52])
        + _rows("a", "scorecam", "saliency", [0.70, 0.72])
        + _rows("a", "uniform", "chance", [0.0, 0.0])
        + _rows("b", "cam", "saliency", [0.10, 0.30])
        + _rows("b", "gradcam", "saliency", [0.20, 0.22])
        + _rows("b", "centred", "chance", [0.3, 0.3])
    )
    models = pd.DataFrame(
        [
            {
                "model": m,
                "trainable_parameters": 10,
                "parameters": 20,
                "epochs_run": 1,
                "weights_used": "none",
            }
            for m in ("a", "b")
        ]
    )
    findings = cam_findings(table, models, 0.5)
    a = next(f for f in findings if f.startswith("a (50 test images)"))
    assert "best localisation by scorecam, 0.7100 ± 0.0141 over 2 seeds" in a
    assert "next cam 0.5100, gap +0.2000, which exceeds the seed-to-seed spread" in a
    assert "pointing game is above the uniform map's 0.0000" in a
    b = next(f for f in findings if f.startswith("b (50 test images)"))
    assert "best localisation by gradcam" in b and "does not exceed the seed-to-seed" in b
    assert "pointing game is not above the centred map's 0.3000" in b
    assert any(f.startswith("a faithfulness: lowest deletion AUC scorecam") for f in findings)
    seeds = seed_table(table)
    assert list(seeds[["model", "method"]].itertuples(index=False, name=None))[:2] == [
        ("a", "cam"),
        ("a", "scorecam"),
    ]
    assert (seeds["seeds"] == 2).all()
