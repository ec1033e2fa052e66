"""Pieces every study's findings are written with: statistics over repeated seeds, a
difference judged against the seed-to-seed spread, and the variants that went wrong.

A finding is a sentence with this run's numbers in it; these helpers keep the wording and
the number format (four decimals, as in the report's tables) the same across studies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def fmt(value: float) -> str:
    """A number as the report's tables print it, so a finding can be found in a table."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.4f}"


def seed_statistics(summary: pd.DataFrame, by: Sequence[str], metric: str) -> pd.DataFrame:
    """Mean, standard deviation (NaN with one seed) and seed count of ``metric`` per
    group of ``by``, in the order the groups first appear."""
    return (
        summary.groupby(list(by), sort=False)[metric]
        .agg(mean="mean", std="std", seeds="count")
        .reset_index()
    )


def mean_text(stats: pd.Series) -> str:
    """``0.9123`` for one seed, ``0.9123 ± 0.0100 over 3 seeds`` for several."""
    if stats["seeds"] > 1:
        return f"{stats['mean']:.4f} ± {stats['std']:.4f} over {int(stats['seeds'])} seeds"
    return fmt(stats["mean"])


def spread_verdict(first: pd.Series, second: pd.Series) -> str:
    """Whether ``second.mean - first.mean`` exceeds the seed-to-seed spread (the sum of
    their standard deviations), as a clause to append to the sentence stating the gap."""
    if min(first["seeds"], second["seeds"]) < 2:
        return " (one seed: no seed-to-seed spread to compare with; set several seeds)"
    gap = second["mean"] - first["mean"]
    spread = first["std"] + second["std"]
    verdict = "exceeds" if abs(gap) > spread else "does not exceed"
    return f", which {verdict} the seed-to-seed spread (sum of the stds {spread:.4f})"


def diverged(summary: pd.DataFrame, name: str) -> list[str]:
    """``<name> diverged`` for every row whose status says so, with its seed and the epoch
    where it did when the summary has them."""
    if "status" not in summary:
        return []
    problems = []
    for _, row in summary[summary["status"] == "diverged"].iterrows():
        text = str(row[name])
        if "seed" in summary and pd.notna(row["seed"]):
            text += f" (seed {int(row['seed'])})"
        text += " diverged"
        if "diverged_epoch" in summary and pd.notna(row["diverged_epoch"]):
            text += f" at epoch {int(row['diverged_epoch'])}"
        problems.append(text)
    return problems
