"""The depth lab's claims, judged on small synthetic summaries."""

from __future__ import annotations

import pandas as pd

from cnn_lab.evaluation.findings import FAILS, HOLDS, NOT_MEASURED, WITHIN_SPREAD, claims_table
from cnn_lab.pipelines.cnn_depth.findings import depth_claims

LAB_LIKE = {  # (family, depth) -> test accuracy per seed, shaped like the README's run
    ("mlp", 32): [0.100, 0.102, 0.104],
    ("mlp_bn", 32): [0.83, 0.81, 0.85],
    ("resmlp", 32): [0.96, 0.97, 0.965],
    ("cnn", 4): [0.72, 0.70, 0.75],
    ("cnn", 8): [0.82, 0.80, 0.84],
    ("cnn", 16): [0.12, 0.11, 0.13],
    ("rescnn", 16): [0.90, 0.92, 0.89],
}


def summary(accuracies: dict, seeds: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {"group": "g", "family": f, "depth": d, "seed": s, "test_accuracy": values[s]}
        for (f, d), values in accuracies.items()
        for s in range(seeds)
    )


def verdicts(table: pd.DataFrame) -> list[str]:
    return table["verdict"].tolist()


def test_a_run_like_the_lab_holds_every_claim_and_names_the_dataset() -> None:
    table = claims_table(depth_claims("digits", 10), summary(LAB_LIKE))
    assert verdicts(table) == [HOLDS] * 5
    assert table["this run measured"].str.startswith("on digits").all()
    assert "not MNIST" in table.loc[1, "this run measured"]  # the 94% judged relatively


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
    assert verdicts(claims_table(depth_claims("digits", 10), summary(failing))) == [FAILS] * 5


def test_numbers_are_checked_on_the_labs_dataset_only() -> None:
    low = {**LAB_LIKE, ("resmlp", 32): [0.91, 0.90, 0.92]}  # learns, but below 0.94
    assert verdicts(claims_table(depth_claims("digits", 10), summary(low)))[1] == HOLDS
    assert verdicts(claims_table(depth_claims("mnist", 10), summary(low)))[1] == FAILS
    eight = {**LAB_LIKE, ("cnn", 8): [0.76, 0.761, 0.762]}
    assert verdicts(claims_table(depth_claims("cifar10", 10), summary(eight)))[3] == HOLDS
    assert verdicts(claims_table(depth_claims("cifar10", 10), summary(LAB_LIKE)))[3] == FAILS


def test_a_gap_inside_the_seed_spread_is_not_called_a_hold() -> None:
    close = {**LAB_LIKE, ("cnn", 4): [0.70, 0.80, 0.90], ("cnn", 8): [0.78, 0.82, 0.86]}
    assert verdicts(claims_table(depth_claims("digits", 10), summary(close)))[3] == WITHIN_SPREAD


def test_variants_outside_the_grid_are_not_measured() -> None:
    tiny = {("mlp", 2): [0.5], ("resmlp", 2): [0.6]}
    table = claims_table(depth_claims("digits", 10), summary(tiny, seeds=1))
    assert verdicts(table) == [NOT_MEASURED] * 5
    assert "mlp at depth 32" in table.loc[0, "this run measured"]
