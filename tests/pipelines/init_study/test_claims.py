"""The init lab report's claims (conf/base/parameters_init_study.yml), judged on small
synthetic summaries."""

from __future__ import annotations

import pandas as pd

from cnn_lab.evaluation.claims import FAILS, HOLDS, NOT_MEASURED, WITHIN_SPREAD
from tests.pipelines.claims_support import judge

LAB_LIKE = {  # run -> (max test accuracy, seconds per batch)
    "NetA1-HF": (0.349, 0.004),
    "NetA1-HT": (0.380, 0.005),
    "NetA1-DT": (0.394, 0.005),
    "NetA2-HF": (0.703, 0.005),
    "NetA2-HT": (0.706, 0.009),
    "NetA2-DT": (0.796, 0.009),
}


def summary(runs: dict, spread: float = 0.0, seeds: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run": run,
            "network": {"NetA1": "net_a1", "NetA2": "net_a2"}[run.split("-")[0]],
            "scheme": run.split("-")[1],
            "seed": seed,
            "max_test_accuracy": accuracy + spread * (seed - 1),
            "seconds_per_batch": seconds,
        }
        for run, (accuracy, seconds) in runs.items()
        for seed in range(seeds)
    )


def verdicts(frame: pd.DataFrame, env: str = "paper") -> list[str]:
    return judge("init_study", {"summary": frame}, env=env)["verdict"].tolist()


def test_the_reports_own_numbers_hold_every_claim() -> None:
    assert verdicts(summary(LAB_LIKE)) == [HOLDS] * 4


def test_reversed_rankings_and_a_slower_frozen_layer_do_not_hold() -> None:
    reversed_runs = {
        "NetA1-HF": (0.97, 0.009),
        "NetA1-HT": (0.96, 0.005),
        "NetA1-DT": (0.95, 0.005),
        "NetA2-HF": (0.90, 0.009),
        "NetA2-HT": (0.89, 0.005),
        "NetA2-DT": (0.88, 0.005),
    }
    assert verdicts(summary(reversed_runs), "local") == [FAILS] * 4


def test_gaps_inside_the_seed_spread() -> None:
    # Three seeds spread by 0.05: the 0.014-0.031 steps of NetA1 are inside it.
    result = verdicts(summary(LAB_LIKE, spread=0.05, seeds=3))
    assert result[0] == WITHIN_SPREAD
    assert result[2] == HOLDS  # NetA2 is 0.31-0.40 above NetA1


def test_a_network_outside_the_run_is_not_measured() -> None:
    only_a1 = {k: v for k, v in LAB_LIKE.items() if k.startswith("NetA1")}
    table = judge("init_study", {"summary": summary(only_a1)}, env="local")
    assert table["verdict"].tolist() == [HOLDS, NOT_MEASURED, NOT_MEASURED, NOT_MEASURED]
    assert "run NetA2-DT was not in this run's summary" in table.loc[1, "this run measured"]
    assert "NetA1-DT 0.3940 vs NetA1-HT 0.3800: gap +0.0140" in table.loc[0, "this run measured"]
