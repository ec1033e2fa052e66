"""The CAM lab's claims (conf/base/parameters_cam.yml), judged on small synthetic
localisation and model tables."""

from __future__ import annotations

import pandas as pd

from cnn_lab.evaluation.claims import FAILS, HOLDS, NOT_MEASURED, OTHER_ENV
from tests.pipelines.claims_support import judge


def localisation(resnet_cam: float, small_cam: float) -> pd.DataFrame:
    rows = []
    for model, cam in (("resnet18", resnet_cam), ("small_cnn", small_cam)):
        for method, kind, score in (
            ("cam", "saliency", cam),
            ("gradcam", "saliency", cam - 0.05),
            ("uniform", "chance", 0.10),
            ("centred", "chance", 0.30),
        ):
            rows.append({"model": model, "method": method, "kind": kind, "localisation": score})
    return pd.DataFrame(rows)


def summary(resnet: float, small: float) -> pd.DataFrame:
    return pd.DataFrame({"model": ["small_cnn", "resnet18"], "test_accuracy": [small, resnet]})


def test_the_labs_run_holds_every_claim_with_paper_numbers() -> None:
    tables = {"localisation": localisation(0.8, 0.6), "summary": summary(0.965, 0.72)}
    assert judge("cam", tables, env="paper")["verdict"].tolist() == [HOLDS] * 5
    local = judge("cam", tables, env="local")
    assert local["verdict"].tolist() == [HOLDS, HOLDS, HOLDS, OTHER_ENV, OTHER_ENV]
    # The best chance map (centred, 0.30) is the reference, not the weaker uniform one.
    measured = local.loc[0, "this run measured"]
    assert "vs the best by localisation, resnet18 centred 0.3000" in measured


def test_a_cam_at_chance_and_a_weak_resnet_fail() -> None:
    tables = {"localisation": localisation(0.2, 0.6), "summary": summary(0.70, 0.72)}
    assert judge("cam", tables, env="paper")["verdict"].tolist() == [
        FAILS,
        HOLDS,
        FAILS,
        FAILS,
        HOLDS,
    ]


def test_without_boxes_localisation_is_not_measured() -> None:
    boxless = localisation(0.8, 0.6).assign(localisation=float("nan"))
    table = judge("cam", {"localisation": boxless, "summary": summary(0.96, 0.7)}, env="paper")
    assert table["verdict"].tolist()[:2] == [NOT_MEASURED] * 2
    assert "no finite localisation" in table.loc[0, "this run measured"]
