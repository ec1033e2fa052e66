"""Findings of the artworks study, in numbers computed from the run's own summary: the
best variant against the others and chance, and what went wrong along the way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from cnn_lab.data.artworks import data_problems
from cnn_lab.evaluation.findings import diverged, fmt, mean_text, seed_statistics, spread_verdict

ARTWORKS_STATISTICS = (
    "test_accuracy",
    "test_balanced_accuracy",
    "test_macro_f1",
    "best_val_accuracy",
    "train_seconds",
)


def artworks_findings(summary: pd.DataFrame, num_classes: int) -> list[str]:
    """The best variant by test macro-F1 against every other variant and against chance
    (1/K: the accuracy and balanced accuracy of guessing); with several seeds the means
    ± stds, and whether each gap to the best exceeds the seed-to-seed spread."""
    if summary.empty:
        return []
    chance = 1.0 / num_classes
    stats = {
        metric: seed_statistics(summary, ["variant"], metric).set_index("variant")
        for metric in ARTWORKS_STATISTICS
    }
    f1, accuracy = stats["test_macro_f1"], stats["test_accuracy"]
    repeated = int(f1["seeds"].max()) > 1
    ranked = f1.sort_values("mean", ascending=False, kind="stable")
    best = ranked.iloc[0]
    described = summary.drop_duplicates("variant").set_index("variant")["description"]
    findings = [
        f"best variant by test macro-F1{' (mean over seeds)' if repeated else ''}: "
        f"{best.name} ({described[best.name]}): macro-F1 {mean_text(best)}, accuracy "
        f"{mean_text(accuracy.loc[best.name])}, balanced accuracy "
        f"{mean_text(stats['test_balanced_accuracy'].loc[best.name])}; chance for "
        f"{num_classes} artists is 1/K = {fmt(chance)}, so its accuracy is "
        f"{accuracy.loc[best.name, 'mean'] / chance:.1f} times chance"
    ]
    for variant, row in ranked.iloc[1:].iterrows():
        findings.append(
            f"{variant}: macro-F1 {mean_text(row)} ({row['mean'] - best['mean']:+.4f} vs "
            f"{best.name}{spread_verdict(row, best) if repeated else ''}), accuracy "
            f"{mean_text(accuracy.loc[variant])}"
            + (" (at or below chance)" if accuracy.loc[variant, "mean"] <= chance else "")
        )
    if not repeated:
        findings.append(
            "one seed per variant: gaps between variants have no seed-to-seed spread to "
            "compare with (set artworks.seeds)"
        )
    times = ", ".join(
        f"{variant} {row['mean']:.1f} s" for variant, row in stats["train_seconds"].iterrows()
    )
    findings.append(f"training time{' (mean over seeds)' if repeated else ''}: {times}")
    return findings


def artworks_problems(
    summary: pd.DataFrame, decoded: Mapping[str, Any], index_report: Mapping[str, Any]
) -> list[str]:
    """Diverged variants, then what the data steps left out (:func:`data_problems`)."""
    return diverged(summary, "variant") + data_problems(decoded, index_report)
