"""Findings of the depth study in numbers, computed from its summary and history tables.

The lab's conclusion ("residual connections rescue deep networks") is only worth writing
down with the accuracies and gradient norms that back it, and with the seed-to-seed
spread that says whether a gap is real.
"""

from __future__ import annotations

import pandas as pd

from cnn_lab.evaluation import findings as common

FIRST_LAYER = "grad_norm_00"
# Residual family -> the plain family it is the twin of.
RESIDUAL_TWINS = {"resmlp": "mlp", "rescnn": "cnn", "cifar_resnet": "cifar_plain"}


def seed_statistics(summary: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
    """Mean, standard deviation (NaN with one seed) and seed count per (group, family, depth)."""
    return common.seed_statistics(summary, ["group", "family", "depth"], metric)


def _first_layer_norm(history: pd.DataFrame, family: str, depth: int) -> float | None:
    """Mean over seeds of the first layer's gradient norm after the first epoch, where a
    vanishing gradient shows before the optimiser has had a chance to work around it."""
    if FIRST_LAYER not in history:
        return None
    rows = history[(history["family"] == family) & (history["depth"] == depth)]
    rows = rows[rows["epoch"] == rows["epoch"].min()][FIRST_LAYER].dropna()
    return float(rows.mean()) if len(rows) else None


def _compare(plain: pd.Series, residual: pd.Series) -> str:
    gap = residual["mean"] - plain["mean"]
    return (
        f"at depth {int(plain['depth'])}, {residual.name} minus {plain.name} "
        f"test accuracy is {gap:+.4f}" + common.spread_verdict(plain, residual)
    )


def depth_findings(summary: pd.DataFrame, history: pd.DataFrame) -> list[str]:
    """Sentences with this run's numbers: the deepest network of each family, plain vs
    residual at that depth, and the ratio of their first-layer gradient norms."""
    stats = seed_statistics(summary)
    findings = []
    for group, rows in stats.groupby("group", sort=False):
        deepest = int(rows["depth"].max())
        at_depth = rows[rows["depth"] == deepest].set_index("family")
        findings.append(
            f"{group} group, deepest networks (depth {deepest}): "
            + "; ".join(f"{family} {common.mean_text(s)}" for family, s in at_depth.iterrows())
        )
        for residual, plain in RESIDUAL_TWINS.items():
            if residual not in at_depth.index or plain not in at_depth.index:
                continue
            findings.append(
                f"{group} group: " + _compare(at_depth.loc[plain], at_depth.loc[residual])
            )
            plain_norm = _first_layer_norm(history, plain, deepest)
            residual_norm = _first_layer_norm(history, residual, deepest)
            if plain_norm and residual_norm is not None:
                findings.append(
                    f"{group} group, depth {deepest}: first-layer gradient norm after epoch 1 "
                    f"is {residual_norm:.3g} for {residual} and {plain_norm:.3g} for {plain}, "
                    f"a ratio of {residual_norm / plain_norm:.3g}"
                )
    return findings
