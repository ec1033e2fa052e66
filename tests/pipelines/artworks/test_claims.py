"""The artworks lab's claims (conf/base/parameters_artworks.yml), judged on small
synthetic summaries."""

from __future__ import annotations

import pandas as pd

from cnn_lab.evaluation.claims import FAILS, HOLDS, NOT_MEASURED, WITHIN_SPREAD
from tests.pipelines.claims_support import judge

LAB_LIKE = {  # variant -> (weights, macro-F1 per seed, training seconds)
    "scratch": ("none", [0.30, 0.32], 100.0),
    "finetune": ("imagenet", [0.70, 0.72], 100.0),
    "freeze_1_4": ("imagenet", [0.50, 0.52], 40.0),
}


def summary(variants: dict) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "variant": name,
            "weights": weights,
            "seed": seed,
            "test_macro_f1": f1,
            "train_seconds": seconds + seed,
        }
        for name, (weights, f1s, seconds) in variants.items()
        for seed, f1 in enumerate(f1s)
    )


def claims(frame: pd.DataFrame) -> pd.DataFrame:
    return judge("artworks", {"summary": frame})


def verdicts(frame: pd.DataFrame) -> list[str]:
    return claims(frame)["verdict"].tolist()


def test_a_run_like_the_lab_holds_every_claim() -> None:
    assert verdicts(summary(LAB_LIKE)) == [HOLDS] * 3


def test_a_run_where_the_claims_fail_says_so() -> None:
    failing = {
        "scratch": ("none", [0.70, 0.72], 100.0),
        "finetune": ("imagenet", [0.30, 0.32], 50.0),
        "freeze_1_4": ("imagenet", [0.50, 0.52], 90.0),
    }
    assert verdicts(summary(failing)) == [FAILS] * 3


def test_within_the_spread_and_not_measured() -> None:
    close = {**LAB_LIKE, "scratch": ("none", [0.60, 0.80], 100.0)}  # 0.70 ± 0.14 vs 0.71
    assert verdicts(summary(close))[0] == WITHIN_SPREAD
    alone = claims(summary({"scratch": LAB_LIKE["scratch"]}))
    assert alone["verdict"].tolist() == [NOT_MEASURED] * 3
    assert alone.loc[0, "this run measured"] == (
        "variant finetune was not in this run's summary (there: scratch)"
    )
    unpretrained = {**LAB_LIKE, "finetune": ("none", [0.70, 0.72], 100.0)}
    without = claims(summary(unpretrained))
    assert without["verdict"].tolist() == [NOT_MEASURED] * 3
    assert (
        "no weights not none in this run's summary among the rows with variant finetune"
        in (without.loc[0, "this run measured"])
    )
