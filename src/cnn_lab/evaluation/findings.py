"""Pieces every study's findings are written with: statistics over repeated seeds, a
difference judged against the seed-to-seed spread, the variants that went wrong, and the
labs' own claims checked against the run (:class:`Claim`, :func:`claims_table`).

A finding is a sentence with this run's numbers in it; these helpers keep the wording and
the number format (four decimals, as in the report's tables) the same across studies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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


# --- the labs' own claims, checked against this run ---------------------------------------

HOLDS = "holds"
FAILS = "does not hold"
WITHIN_SPREAD = "within the seed spread"
NOT_MEASURED = "not measured in this run"
VERDICTS = (HOLDS, FAILS, WITHIN_SPREAD, NOT_MEASURED)
CLAIM_COLUMNS = ("claim", "lab reports", "this run measured", "verdict")


class NotMeasured(Exception):
    """Raised by a claim's check when this run's grid lacks what the claim is about; the
    message says what is missing and becomes the "this run measured" cell."""


@dataclass(frozen=True)
class Claim:
    """A claim a lab report made: ``text`` (what it says), ``source`` (where in the lab, with
    the lab's own number) and ``check``, a function of the run's tables returning
    (what this run measured, in words with its numbers; one of :data:`VERDICTS`)."""

    text: str
    source: str
    check: Callable[..., tuple[str, str]]


def claims_table(claims: Sequence[Claim], *tables: Any) -> pd.DataFrame:
    """One row per claim: the claim, what the lab reports, what this run measured and the
    verdict; a check that raises :class:`NotMeasured` gives "not measured in this run"."""
    rows = []
    for claim in claims:
        try:
            measured, verdict = claim.check(*tables)
        except NotMeasured as missing:
            measured, verdict = str(missing), NOT_MEASURED
        if verdict not in VERDICTS:
            raise ValueError(f"claim {claim.text!r}: verdict {verdict!r} is not one of {VERDICTS}")
        rows.append((claim.text, claim.source, measured, verdict))
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))


def statistics_of(stats: pd.DataFrame, key: Any, what: str) -> pd.Series:
    """Row ``key`` of a :func:`seed_statistics` table indexed by its group, or
    :class:`NotMeasured` naming ``what`` when this run did not train it."""
    if key not in stats.index or pd.isna(stats.loc[key, "mean"]):
        raise NotMeasured(f"{what} was not in this run's grid")
    row = stats.loc[key]
    return row.iloc[0] if isinstance(row, pd.DataFrame) else row


def worst(*verdicts: str) -> str:
    """The weakest of several verdicts a claim needs together: does not hold, then within
    the seed spread, then holds."""
    for verdict in (FAILS, WITHIN_SPREAD):
        if verdict in verdicts:
            return verdict
    return HOLDS


def _repeated(*stats: pd.Series) -> bool:
    return min(s["seeds"] for s in stats) > 1


def beats(better: pd.Series, worse: pd.Series) -> str:
    """The verdict on "``better`` is above ``worse``" (seed statistics): with several seeds
    the gap must exceed the seed-to-seed spread (the sum of the stds, as
    :func:`spread_verdict` words it) to hold, and fall below minus the spread to fail."""
    gap = better["mean"] - worse["mean"]
    if not _repeated(better, worse):
        return HOLDS if gap > 0 else FAILS
    spread = better["std"] + worse["std"]
    return HOLDS if gap > spread else FAILS if gap < -spread else WITHIN_SPREAD


def gap_text(better: pd.Series, worse: pd.Series, names: tuple[str, str]) -> str:
    """``a 0.9660 ± 0.0060 over 3 seeds vs b ...: gap +0.8640, which exceeds ...``."""
    gap = better["mean"] - worse["mean"]
    clause = spread_verdict(worse, better) if _repeated(better, worse) else ""
    return (
        f"{names[0]} {mean_text(better)} vs {names[1]} {mean_text(worse)}: gap {gap:+.4f}{clause}"
    )


def versus(stats: pd.Series, reference: float, *, above: bool = True) -> str:
    """The verdict on "``stats`` is above (or below) the exact ``reference``" (a threshold,
    a baseline fitted once): with several seeds the whole mean ± std band must be on the
    claimed side to hold, and on the other side to fail."""
    gap = (stats["mean"] - reference) * (1 if above else -1)
    std = stats["std"] if stats["seeds"] > 1 and pd.notna(stats["std"]) else 0.0
    if gap > std:
        return HOLDS
    if gap < -std or (std == 0 and gap == 0):
        return FAILS
    return WITHIN_SPREAD


def near(stats: pd.Series, target: float, tolerance: float) -> str:
    """The verdict on "``stats`` is ``target`` within ``tolerance``": with several seeds
    the whole mean ± std band must be inside to hold, and outside to fail."""
    distance = abs(stats["mean"] - target)
    std = stats["std"] if stats["seeds"] > 1 and pd.notna(stats["std"]) else 0.0
    if distance + std <= tolerance:
        return HOLDS
    return FAILS if distance - std > tolerance else WITHIN_SPREAD


def reference_text(stats: pd.Series, reference: pd.Series, names: tuple[str, str]) -> str:
    """``a 0.95 ± 0.01 over 3 seeds vs b 0.86 (exact): gap +0.09, which exceeds the
    seed-to-seed std 0.01``: a repeated run against a reference fitted once."""
    gap = stats["mean"] - reference["mean"]
    clause = f", which {std_verdict(gap, stats)}" if stats["seeds"] > 1 else ""
    return (
        f"{names[0]} {mean_text(stats)} vs {names[1]} {fmt(reference['mean'])} (fitted once): "
        f"gap {gap:+.4f}{clause}"
    )
