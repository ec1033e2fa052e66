"""A study's summary: one row per variant and seed, with the spread across seeds beside it,
and one long per-epoch history table; both are also logged to the study's MLflow run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from cnn_lab.evaluation.class_plots import confusion_matrix
from cnn_lab.evaluation.findings import with_seed_statistics
from cnn_lab.evaluation.metrics import confusion
from cnn_lab.runtime.tracking import log_figures, log_table
from cnn_lab.study.train import history_table

BEST_CONFUSION = "confusion_matrix_best"

# Per-epoch and per-sample columns of a result: tables of their own, not summary columns.
PER_SAMPLE = ("history", "test_labels")


def summary_row(result: Mapping[str, Any]) -> dict[str, Any]:
    """A variant's result without its per-epoch and per-sample parts."""
    return {k: v for k, v in result.items() if k not in PER_SAMPLE}


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
    rows = [summary_row(r) for r in results]
    summary = with_seed_statistics(pd.DataFrame(rows), by, statistics)
    history = history_table(results, history_keys)
    first = [c for c in (*history_keys, "epoch", *history_leading) if c in history]
    history = history[list(dict.fromkeys(first)) + sorted(c for c in history if c not in first)]
    log_table(summary, "tables/summary.csv")
    log_table(history, "tables/history.csv")
    return summary, history


def best_confusion(results: Sequence[Mapping[str, Any]]) -> dict[str, Figure]:
    """The row-normalised test confusion matrix of the variant with the best test
    accuracy: where a good mean accuracy hides a class the network never gets right."""
    scored = [r for r in results if (r.get("test_labels") or {}).get("true")]
    if not scored:
        return {}
    best = max(scored, key=lambda r: r.get("test_accuracy", float("-inf")))
    labels = best["test_labels"]
    matrix = confusion(labels["true"], labels["predicted"], len(labels["classes"]))
    name = best.get("variant", best.get("model", best.get("run", "best")))
    title = f"best variant {name} (test, rows normalised)"
    return {BEST_CONFUSION: confusion_matrix(matrix, labels["classes"], title)}


def best_confusion_figure(*results: Mapping[str, Any]) -> Figure:
    """The study's node behind :func:`best_confusion`: the figure, logged to the study's
    run and saved for its report; a figure saying so when no variant was scored on a
    test split here (the report then says it instead of leaving a gap)."""
    best = best_confusion(results)
    if best:
        log_figures(best)
        return best[BEST_CONFUSION]
    figure = Figure(figsize=(5, 1.2))
    figure.text(0.5, 0.5, "no variant was scored on a test split in this run", ha="center")
    return figure
