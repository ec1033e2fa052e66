"""The claims evaluator: verdicts against the seed spread, a claims file judged on a
hand-made summary, and the validation of a malformed claim."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from cnn_lab.evaluation.claims import (
    CLAIM_COLUMNS,
    FAILS,
    HOLDS,
    NOT_MEASURED,
    OTHER_ENV,
    WITHIN_SPREAD,
    ClaimSpec,
    Table,
    beats,
    claims_table,
    near,
    parse_claims,
    versus,
    worst,
)
from cnn_lab.study.params import ParameterError, StrictModel, validate_parameters


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


CLAIMS_FILE = """
claims:
  a_beats_b:
    claim: a beats b
    source: lab 1
    metric: accuracy
    subject: {where: {variant: a}}
    compare: above
    reference: {where: {variant: b}}
  b_reaches_90:
    claim: b reaches 90%
    source: lab 2, 90%
    metric: accuracy
    subject: {where: {variant: b}}
    compare: reaches
    reference: 0.9
    tolerance: 0.01
  c_learns:
    claim: c learns
    source: lab 3
    metric: accuracy
    subject: {where: {variant: c}}
    compare: above
    reference: 0.5
  a_near_95_on_paper:
    claim: a reaches 95%
    source: lab 4
    env: paper
    metric: accuracy
    subject: {where: {variant: a}}
    compare: near
    reference: 0.95
    tolerance: 0.02
"""
SUMMARY = pd.DataFrame(
    {"variant": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "accuracy": [0.95, 0.96, 0.80, 0.81]}
)


def judged(env: str = "local") -> pd.DataFrame:
    claims = parse_claims(yaml.safe_load(CLAIMS_FILE)["claims"])
    return claims_table(claims, {"summary": Table(SUMMARY, ("variant",))}, env=env)


def test_a_true_and_a_false_claim_give_one_hold_and_one_fail() -> None:
    table = judged()
    assert list(table.columns) == list(CLAIM_COLUMNS)
    assert table["verdict"].tolist() == [HOLDS, FAILS, NOT_MEASURED, OTHER_ENV]
    assert table.loc[0, "this run measured"] == (
        "accuracy: a 0.9550 ± 0.0071 over 2 seeds vs b 0.8050 ± 0.0071 over 2 seeds: gap "
        "+0.1500, which exceeds the seed-to-seed spread (sum of the stds 0.0141)"
    )
    assert "at least 0.8900: the lab's 0.9 less 0.01" in table.loc[1, "this run measured"]
    assert table.loc[2, "this run measured"] == (
        "variant c was not in this run's summary (there: a, b)"
    )
    assert table.loc[3, "this run measured"].startswith("checked with --env=paper")
    assert judged("paper").loc[3, "verdict"] == HOLDS


def test_order_and_pairs() -> None:
    frame = pd.DataFrame(
        {
            "run": ["x-1", "x-2", "y-1", "y-2"],
            "net": ["x", "x", "y", "y"],
            "k": [1, 2, 1, 2],
            "score": [0.9, 0.5, 0.8, 0.6],
        }
    )
    claims = parse_claims(
        {
            "order": {
                "claim": "x-1 > y-1 > x-2",
                "source": "s",
                "metric": "score",
                "compare": "order",
                "order": [{"where": {"run": r}} for r in ("x-1", "y-1", "x-2")],
            },
            "paired": {
                "claim": "x above y at each k",
                "source": "s",
                "metric": "score",
                "subject": {"where": {"net": "x"}},
                "compare": "above",
                "reference": {"where": {"net": "y"}},
                "paired_by": ["k"],
            },
        }
    )
    table = claims_table(claims, {"summary": Table(frame, ("run",))}, env="local")
    assert table["verdict"].tolist() == [HOLDS, FAILS]  # x-2 0.5 is below y-2 0.6
    assert "x-2 0.5000 vs y-2 0.6000: gap -0.1000" in table.loc[1, "this run measured"]


class Params(StrictModel):
    claims: dict[str, ClaimSpec]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"compare": "beats"},
            "study.claims.a_beats_b.compare: got 'beats'; Input should be 'above', 'below', "
            "'near', 'reaches' or 'order'",
        ),
        ({"reference": None}, "study.claims.a_beats_b.reference: required with compare: above"),
        ({"tolerance": 0.1}, "study.claims.a_beats_b.tolerance: only with compare: near or"),
        ({"subject": {"wher": {}}}, "study.claims.a_beats_b.subject.wher: unknown key"),
    ],
)
def test_a_malformed_claim_names_its_key(change: dict, message: str) -> None:
    raw = yaml.safe_load(CLAIMS_FILE)
    raw["claims"]["a_beats_b"] |= change
    with pytest.raises(ParameterError) as info:
        validate_parameters(Params, raw, "study")
    assert message in str(info.value)
