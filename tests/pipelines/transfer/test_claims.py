"""The transfer lab's claims (conf/base/parameters_transfer.yml), judged on small
synthetic summaries; its CIFAR-100 numbers only with --env=paper."""

from __future__ import annotations

import pandas as pd

from cnn_lab.evaluation.claims import FAILS, HOLDS, NOT_MEASURED, OTHER_ENV, WITHIN_SPREAD
from tests.pipelines.claims_support import judge

LAB_LIKE = {  # approach -> (group, validation accuracy, test accuracy per seed)
    "svm": ("baseline", 0.38, [0.37]),
    "logistic": ("baseline", 0.37, [0.36]),
    "head": ("finetune", 0.30, [0.29, 0.28, 0.30]),
    "all": ("finetune", 0.50, [0.49, 0.50, 0.48]),
    "tuned": ("search", 0.52, [0.51, 0.52, 0.50]),
}
# In the YAML's order: baselines ~0.37 (paper), head below the baseline, head ~0.29
# (paper), fine-tuning above the baseline, tuned above the baseline, tuned ~0.51 (paper).
NUMERIC = (0, 2, 5)


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


def verdicts(frame: pd.DataFrame, env: str = "paper") -> list[str]:
    return judge("transfer", {"summary": frame}, env=env)["verdict"].tolist()


def test_the_labs_numbers_hold_every_claim_in_its_env() -> None:
    assert verdicts(summary(LAB_LIKE)) == [HOLDS] * 6


def test_numbers_are_not_judged_in_another_env() -> None:
    table = judge("transfer", {"summary": summary(LAB_LIKE)}, env="local", on="digits")
    expected = [OTHER_ENV if i in NUMERIC else HOLDS for i in range(6)]
    assert table["verdict"].tolist() == expected
    assert "checked with --env=paper" in table.loc[0, "this run measured"]
    assert "on digits: test_accuracy: svm 0.3700" in table.loc[0, "this run measured"]
    # The best baseline is chosen by validation accuracy: svm (0.38), not logistic.
    assert "vs the best by val_accuracy, svm" in table.loc[1, "this run measured"]


def test_a_run_where_the_claims_fail_says_so() -> None:
    failing = {
        "svm": ("baseline", 0.60, [0.60]),
        "logistic": ("baseline", 0.58, [0.58]),
        "head": ("finetune", 0.45, [0.70, 0.71, 0.69]),  # head above the baselines
        "all": ("finetune", 0.50, [0.50, 0.51, 0.49]),  # fine-tuning below them
        "tuned": ("search", 0.40, [0.40, 0.41, 0.39]),
    }
    assert verdicts(summary(failing)) == [FAILS] * 6
    expected = [OTHER_ENV if i in NUMERIC else FAILS for i in range(6)]
    assert verdicts(summary(failing), "local") == expected


def test_a_gap_inside_the_seed_std_and_a_missing_tuned_model() -> None:
    close = {
        **{k: v for k, v in LAB_LIKE.items() if k != "tuned"},
        "all": ("finetune", 0.50, [0.30, 0.40, 0.50]),  # 0.40 ± 0.10 vs 0.37
    }
    assert verdicts(summary(close), "local") == [
        OTHER_ENV,
        HOLDS,
        OTHER_ENV,
        WITHIN_SPREAD,
        NOT_MEASURED,
        OTHER_ENV,
    ]
