"""The transfer lab's claims, judged on small synthetic summaries."""

from __future__ import annotations

import pandas as pd

from cnn_lab.evaluation.findings import FAILS, HOLDS, NOT_MEASURED, WITHIN_SPREAD, claims_table
from cnn_lab.pipelines.transfer.findings import transfer_claims

LAB_LIKE = {  # approach -> (group, validation accuracy, test accuracy per seed)
    "svm": ("baseline", 0.38, [0.37]),
    "logistic": ("baseline", 0.37, [0.36]),
    "head": ("finetune", 0.30, [0.29, 0.28, 0.30]),
    "all": ("finetune", 0.50, [0.49, 0.50, 0.48]),
    "tuned": ("search", 0.52, [0.51, 0.52, 0.50]),
}


def summary(approaches: dict) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "approach": name,
            "group": group,
            "seed": seed,
            "val_accuracy": val,
            "test_accuracy": test,
            "train_seconds": 1.0,
        }
        for name, (group, val, tests) in approaches.items()
        for seed, test in enumerate(tests)
    )


def verdicts(frame: pd.DataFrame, target: str = "cifar100") -> list[str]:
    return claims_table(transfer_claims(target), frame)["verdict"].tolist()


def test_the_labs_numbers_hold_every_claim_on_cifar100() -> None:
    assert verdicts(summary(LAB_LIKE)) == [HOLDS] * 4


def test_numbers_are_not_judged_on_another_target() -> None:
    table = claims_table(transfer_claims("digits"), summary(LAB_LIKE))
    assert table["verdict"].tolist() == [NOT_MEASURED, HOLDS, HOLDS, HOLDS]
    assert "not CIFAR-100" in table.loc[0, "this run measured"]


def test_a_run_where_the_claims_fail_says_so() -> None:
    failing = {
        "svm": ("baseline", 0.60, [0.60]),
        "logistic": ("baseline", 0.58, [0.58]),
        "head": ("finetune", 0.45, [0.70, 0.71, 0.69]),  # head above the baselines
        "all": ("finetune", 0.50, [0.50, 0.51, 0.49]),  # fine-tuning below them
        "tuned": ("search", 0.40, [0.40, 0.41, 0.39]),
    }
    assert verdicts(summary(failing)) == [FAILS] * 4
    assert verdicts(summary(failing), "digits") == [NOT_MEASURED, FAILS, FAILS, FAILS]


def test_a_gap_inside_the_seed_std_and_a_missing_tuned_model() -> None:
    close = {
        **{k: v for k, v in LAB_LIKE.items() if k != "tuned"},
        "all": ("finetune", 0.50, [0.30, 0.40, 0.50]),  # 0.40 ± 0.10 vs 0.37
    }
    assert verdicts(summary(close), "digits") == [NOT_MEASURED, HOLDS, WITHIN_SPREAD, NOT_MEASURED]
