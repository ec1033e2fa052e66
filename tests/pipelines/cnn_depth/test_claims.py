"""The depth lab's claims (conf/base/parameters_cnn_depth.yml), judged on small synthetic
summaries; numeric claims only in the env of the lab's setting."""

from __future__ import annotations

import pandas as pd

from cnn_lab.evaluation.claims import FAILS, HOLDS, NOT_MEASURED, OTHER_ENV, WITHIN_SPREAD
from tests.pipelines.claims_support import judge

LAB_LIKE = {  # (family, depth) -> test accuracy per seed, shaped like the README's run
    ("mlp", 32): [0.100, 0.102, 0.104],
    ("mlp_bn", 32): [0.83, 0.81, 0.85],
    ("resmlp", 32): [0.96, 0.97, 0.965],
    ("cnn", 4): [0.72, 0.70, 0.75],
    ("cnn", 8): [0.82, 0.80, 0.84],
    ("cnn", 16): [0.12, 0.11, 0.13],
    ("rescnn", 16): [0.90, 0.92, 0.89],
}
# The claims in their YAML order; the third and sixth are numeric (paper / paper_cnn).
PLAIN_MLP, RESMLP, RESMLP_94, BN, CNN8, CNN8_7606, RESCNN, HE = range(8)


def summary(accuracies: dict, seeds: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {"group": "g", "family": f, "depth": d, "seed": s, "test_accuracy": values[s]}
        for (f, d), values in accuracies.items()
        for s in range(seeds)
    )


def verdicts(accuracies: dict, env: str = "local", seeds: int = 3) -> list[str]:
    return claims(accuracies, env, seeds)["verdict"].tolist()


def claims(accuracies: dict, env: str = "local", seeds: int = 3) -> pd.DataFrame:
    return judge(
        "cnn_depth", {"summary": summary(accuracies, seeds)}, env=env, chance=0.1, on="digits"
    )


def test_a_run_like_the_lab_holds_every_qualitative_claim_and_names_the_dataset() -> None:
    table = claims(LAB_LIKE)
    assert table["verdict"].tolist() == [
        HOLDS,
        HOLDS,
        OTHER_ENV,  # 94%: checked with --env=paper only
        HOLDS,
        HOLDS,
        OTHER_ENV,  # 76.06%: checked with --env=paper_cnn only
        HOLDS,
        NOT_MEASURED,  # He et al.'s cifar_plain / cifar_resnet did not run
    ]
    assert table["this run measured"].str.contains("on digits").all()
    assert "checked with --env=paper," in table.loc[RESMLP_94, "this run measured"]
    assert "resmlp_d32 0.9650 ± 0.0050 over 3 seeds" in table.loc[RESMLP_94, "this run measured"]


def test_a_run_where_the_claims_fail_says_so() -> None:
    failing = {
        ("mlp", 32): [0.90, 0.91, 0.92],  # the plain MLP learns
        ("mlp_bn", 32): [0.50, 0.52, 0.51],  # BatchNorm below it
        ("resmlp", 32): [0.10, 0.11, 0.10],  # the residual one does not learn
        ("cnn", 4): [0.90, 0.91, 0.92],  # depth 4 beats depth 8
        ("cnn", 8): [0.80, 0.81, 0.80],
        ("cnn", 16): [0.85, 0.86, 0.85],  # the plain 16-layer CNN trains
        ("rescnn", 16): [0.50, 0.52, 0.51],
    }
    result = verdicts(failing)
    assert [result[i] for i in (PLAIN_MLP, RESMLP, BN, CNN8, RESCNN)] == [FAILS] * 5
    assert verdicts(failing, "paper")[RESMLP_94] == FAILS


def test_numbers_are_checked_in_the_labs_env_only() -> None:
    low = {**LAB_LIKE, ("resmlp", 32): [0.91, 0.90, 0.92]}  # learns, but below 0.94
    assert verdicts(low)[RESMLP] == HOLDS
    assert verdicts(low)[RESMLP_94] == OTHER_ENV
    assert verdicts(low, "paper")[RESMLP_94] == FAILS
    assert verdicts(LAB_LIKE, "paper")[RESMLP_94] == HOLDS
    eight = {**LAB_LIKE, ("cnn", 8): [0.76, 0.761, 0.762]}
    assert verdicts(eight, "paper_cnn")[CNN8_7606] == HOLDS
    assert verdicts(LAB_LIKE, "paper_cnn")[CNN8_7606] == FAILS
    assert verdicts(LAB_LIKE, "paper")[CNN8_7606] == OTHER_ENV


def test_a_gap_inside_the_seed_spread_is_not_called_a_hold() -> None:
    close = {**LAB_LIKE, ("cnn", 4): [0.70, 0.80, 0.90], ("cnn", 8): [0.78, 0.82, 0.86]}
    assert verdicts(close)[CNN8] == WITHIN_SPREAD


def test_variants_outside_the_grid_are_not_measured() -> None:
    tiny = {("mlp", 2): [0.5], ("resmlp", 2): [0.6]}
    table = claims(tiny, "paper", seeds=1)
    expected = [NOT_MEASURED] * 8
    expected[CNN8_7606] = OTHER_ENV  # a paper_cnn claim in env paper
    assert table["verdict"].tolist() == expected
    assert "depth 32 was not in this run's summary" in table.loc[PLAIN_MLP, "this run measured"]
    assert "(there: 2)" in table.loc[PLAIN_MLP, "this run measured"]


def test_he_et_al_resnets_against_their_plain_twins_by_depth() -> None:
    cifar = {
        ("cifar_plain", 20): [0.90, 0.91],
        ("cifar_resnet", 20): [0.92, 0.93],
        ("cifar_plain", 56): [0.85, 0.86],
        ("cifar_resnet", 56): [0.93, 0.94],
        ("cifar_resnet", 110): [0.94, 0.95],  # no plain twin: not compared
    }
    table = claims(cifar, "paper_he", seeds=2)
    assert table.loc[HE, "verdict"] == HOLDS
    measured = table.loc[HE, "this run measured"]
    assert "cifar_resnet_d20" in measured and "cifar_resnet_d56" in measured
    assert "d110" not in measured
