"""A study's summary: one row per variant and seed, with the spread across seeds beside it,
and one long per-epoch history table; both are also logged to the study's MLflow run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from cnn_lab.evaluation.findings import with_seed_statistics
from cnn_lab.runtime.tracking import log_table
from cnn_lab.study.train import history_table


def summarise(
    results: Sequence[Mapping[str, Any]],
    *,
    by: Sequence[str],
    statistics: Sequence[str],
    history_keys: Sequence[str],
    history_leading: Sequence[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The summary (without the histories) with the mean and std across seeds of each of
    ``statistics`` per group of ``by``, and the history of every result labelled with
    ``history_keys``, its ``history_leading`` columns first and the rest sorted."""
    rows = [{k: v for k, v in r.items() if k != "history"} for r in results]
    summary = with_seed_statistics(pd.DataFrame(rows), by, statistics)
    history = history_table(results, history_keys)
    first = [c for c in (*history_keys, "epoch", *history_leading) if c in history]
    history = history[list(dict.fromkeys(first)) + sorted(c for c in history if c not in first)]
    log_table(summary, "tables/summary.csv")
    log_table(history, "tables/history.csv")
    return summary, history
