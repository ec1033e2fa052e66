"""Pieces every study's findings are written with: statistics over repeated seeds, a
difference judged against the seed-to-seed spread, and the variants that went wrong (the
labs' own claims are checked in :mod:`cnn_lab.evaluation.claims`).

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


def statistic_columns(metrics: Sequence[str]) -> list[str]:
    """``<metric>_mean``, ``<metric>_std`` per metric, then ``seeds``: the columns
    :func:`with_seed_statistics` adds."""
    return [f"{m}_{k}" for m in metrics for k in ("mean", "std")] + ["seeds"]


def with_seed_statistics(
    summary: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]
) -> pd.DataFrame:
    """``summary`` (one row per variant and seed) with, beside each row, the mean and
    standard deviation across seeds of each metric of its group of ``by`` (std NaN with
    one seed) and the group's number of seeds."""
    summary = summary.copy()
    groups = summary.groupby(list(by), sort=False)
    for metric in metrics:
        summary[f"{metric}_mean"] = groups[metric].transform("mean")
        summary[f"{metric}_std"] = groups[metric].transform("std")
    summary["seeds"] = groups[metrics[0]].transform("size")
    return summary


def across_seeds(summary: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """One row per group of ``by`` with the statistics :func:`with_seed_statistics` added:
    the report's "mean and std across seeds" table."""
    table = summary.drop_duplicates(list(by))[[*by, *statistic_columns(metrics)]]
    return table.reset_index(drop=True)


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


def std_verdict(gap: float, stats: pd.Series) -> str:
    """Whether ``gap`` to an exact reference (a chance map, a baseline fitted once)
    exceeds the seed-to-seed std of the repeated side, as a clause."""
    verdict = "exceeds" if abs(gap) > stats["std"] else "does not exceed"
    return f"{verdict} the seed-to-seed std {stats['std']:.4f}"


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
