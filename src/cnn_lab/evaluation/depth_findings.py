"""Findings of the depth study in numbers, computed from its summary and history tables.

The lab's conclusion ("residual connections rescue deep networks") is only worth writing
down with the accuracies and gradient norms that back it, and with the seed-to-seed
spread that says whether a gap is real.
"""

from __future__ import annotations

import pandas as pd

FIRST_LAYER = "grad_norm_00"
# Residual family -> the plain family it is the twin of.
RESIDUAL_TWINS = {"resmlp": "mlp", "rescnn": "cnn", "cifar_resnet": "cifar_plain"}


def seed_statistics(summary: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
    """Mean, standard deviation (NaN with one seed) and seed count per (group, family, depth)."""
    return (
        summary.groupby(["group", "family", "depth"], sort=False)[metric]
        .agg(mean="mean", std="std", seeds="count")
        .reset_index()
    )


def _accuracy(stats: pd.Series) -> str:
    if stats["seeds"] > 1:
        return f"{stats['mean']:.4f} ± {stats['std']:.4f} over {int(stats['seeds'])} seeds"
    return f"{stats['mean']:.4f}"


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
    text = (
        f"at depth {int(plain['depth'])}, {residual.name} minus {plain.name} "
        f"test accuracy is {gap:+.4f}"
    )
    if min(plain["seeds"], residual["seeds"]) < 2:
        return text + " (one seed: no seed-to-seed spread to compare with; set several seeds)"
    spread = plain["std"] + residual["std"]
    verdict = "exceeds" if abs(gap) > spread else "does not exceed"
    return text + f", which {verdict} the seed-to-seed spread (sum of the stds {spread:.4f})"


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
            + "; ".join(f"{family} {_accuracy(s)}" for family, s in at_depth.iterrows())
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


def depth_problems(summary: pd.DataFrame) -> list[str]:
    """Variants that diverged, named with the epoch where they did."""
    diverged = summary[summary["status"] == "diverged"]
    return [
        f"{row.variant}"
        + (f" (seed {row.seed})" if "seed" in summary else "")
        + f" diverged at epoch {row.diverged_epoch}"
        for row in diverged.itertuples()
    ]
