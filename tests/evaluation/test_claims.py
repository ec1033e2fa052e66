"""The shared claims helper: verdicts against the seed spread, and the table's shape."""

from __future__ import annotations

import pandas as pd
import pytest

from cnn_lab.evaluation.findings import (
    CLAIM_COLUMNS,
    FAILS,
    HOLDS,
    NOT_MEASURED,
    WITHIN_SPREAD,
    Claim,
    NotMeasured,
    beats,
    claims_table,
    near,
    versus,
    worst,
)


def stats(mean: float, std: float = float("nan"), seeds: int = 1) -> pd.Series:
    return pd.Series({"mean": mean, "std": std, "seeds": seeds})


def test_one_seed_judges_the_sign_of_the_gap() -> None:
    assert beats(stats(0.9), stats(0.8)) == HOLDS
    assert beats(stats(0.8), stats(0.9)) == FAILS
    assert beats(stats(0.8), stats(0.8)) == FAILS


def test_several_seeds_need_the_gap_to_exceed_the_spread() -> None:
    assert beats(stats(0.9, 0.01, 3), stats(0.8, 0.01, 3)) == HOLDS
    assert beats(stats(0.82, 0.02, 3), stats(0.8, 0.01, 3)) == WITHIN_SPREAD
    assert beats(stats(0.78, 0.02, 3), stats(0.8, 0.01, 3)) == WITHIN_SPREAD
    assert beats(stats(0.7, 0.01, 3), stats(0.8, 0.01, 3)) == FAILS


def test_an_exact_reference_is_judged_by_the_whole_band() -> None:
    assert versus(stats(0.15, 0.01, 3), 0.2, above=False) == HOLDS
    assert versus(stats(0.19, 0.02, 3), 0.2, above=False) == WITHIN_SPREAD
    assert versus(stats(0.5), 0.2, above=False) == FAILS
    assert near(stats(0.36), 0.37, 0.03) == HOLDS
    assert near(stats(0.39, 0.02, 3), 0.37, 0.03) == WITHIN_SPREAD
    assert near(stats(0.86), 0.37, 0.03) == FAILS


def test_worst_of_several_conditions() -> None:
    assert worst(HOLDS, HOLDS) == HOLDS
    assert worst(HOLDS, WITHIN_SPREAD) == WITHIN_SPREAD
    assert worst(WITHIN_SPREAD, FAILS, HOLDS) == FAILS


def test_table_has_one_row_per_claim_and_not_measured_for_a_missing_variant() -> None:
    def higher(table: pd.DataFrame) -> tuple[str, str]:
        return "a above b", beats(stats(table["a"].mean()), stats(table["b"].mean()))

    def missing(table: pd.DataFrame) -> tuple[str, str]:
        raise NotMeasured("c was not in this run's grid")

    claims = [Claim("a beats b", "lab 1", higher), Claim("c learns", "lab 2", missing)]
    table = claims_table(claims, pd.DataFrame({"a": [0.9], "b": [0.8]}))
    assert list(table.columns) == list(CLAIM_COLUMNS)
    assert table["verdict"].tolist() == [HOLDS, NOT_MEASURED]
    assert table.loc[1, "this run measured"] == "c was not in this run's grid"
    flipped = claims_table(claims, pd.DataFrame({"a": [0.7], "b": [0.8]}))
    assert flipped.loc[0, "verdict"] == FAILS


def test_a_check_must_give_a_known_verdict() -> None:
    claim = Claim("x", "lab", lambda table: ("measured", "probably"))
    with pytest.raises(ValueError, match="probably"):
        claims_table([claim], pd.DataFrame())
