"""Findings of the transfer study, in numbers computed from the run's own tables.

Each best is chosen by validation accuracy and compared on the test set; with several
seeds the fine-tuning runs are ranked by their mean, quoted as mean ± std, and each gap is
judged against the seed-to-seed spread (the baselines are fitted once: exact).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cnn_lab.evaluation.findings import (
    diverged,
    fmt,
    mean_text,
    seed_statistics,
    spread_verdict,
    std_verdict,
)
from cnn_lab.training.search import trials_text

TRANSFER_KEYS = ("group", "approach")
TRANSFER_STATISTICS = ("val_accuracy", "test_accuracy", "train_seconds")


@dataclass
class Scores:
    """The summary's statistics per approach, and the approaches ranked per group."""

    summary: pd.DataFrame

    def __post_init__(self) -> None:
        summary = self.summary
        self.val = seed_statistics(summary, TRANSFER_KEYS, "val_accuracy")
        self.test = seed_statistics(summary, TRANSFER_KEYS, "test_accuracy").set_index("approach")
        self.seconds = seed_statistics(summary, TRANSFER_KEYS, "train_seconds")
        self.seconds = self.seconds.set_index("approach")
        self.repeated = int(self.val["seeds"].max()) > 1 if len(self.val) else False
        self.by = "by validation accuracy" + (", mean over seeds" if self.repeated else "")
        self.rows = summary.drop_duplicates("approach").set_index("approach")
        self.baselines, self.presets = _ranked(self.val, "baseline"), _ranked(self.val, "finetune")
        self.optimizers = _ranked(self.val, "optimizers")


def _ranked(val: pd.DataFrame, group: str) -> pd.DataFrame:
    """The approaches of ``group`` by mean validation accuracy, best first."""
    rows = val[(val["group"] == group) & val["mean"].notna()]
    return rows.sort_values("mean", ascending=False, kind="stable")


def _runner_up(name: str, ranked: pd.DataFrame, test: pd.DataFrame) -> str | None:
    """The best approach of a group minus the second (by validation accuracy), on the
    test set, against the seed-to-seed spread."""
    if len(ranked) < 2:
        return None
    first, second = (test.loc[a] for a in ranked["approach"].iloc[:2])
    return (
        f"{name}: {first.name} minus the runner-up {second.name}: test accuracy "
        f"{first['mean'] - second['mean']:+.4f}{spread_verdict(second, first)}"
    )


def transfer_findings(
    summary: pd.DataFrame, source: Mapping[str, Any], trials: pd.DataFrame | None = None
) -> list[str]:
    """The source network the features come from, the best feature baseline against the
    best fine-tuning preset, the runners-up, the best optimizer, the tuned model and early
    stopping."""
    scores = Scores(summary)
    findings = [_source(source), *_baseline_and_preset(scores)]
    for name, ranked in (
        ("fine-tuning presets", scores.presets),
        ("optimizers", scores.optimizers),
    ):
        text = _runner_up(name, ranked, scores.test)
        if text:
            findings.append(text)
    findings += _best(scores, scores.optimizers, f"optimizer ({scores.by})")[1]
    if "tuned" in scores.rows.index:
        findings += _tuned(scores, trials)
    return findings + _early_stopping(summary, scores.repeated)


def _source(source: Mapping[str, Any]) -> str:
    if source.get("trained"):
        return (
            f"source network trained on {source.get('dataset')}: test accuracy "
            f"{fmt(source['test_accuracy'])} ({source['train_seconds']:.1f} s)"
        )
    return f"source network not trained here: weights {source.get('weights')}"


def _best(
    scores: Scores, ranked: pd.DataFrame, what: str, cost: Callable[[str], str] | None = None
) -> tuple[str | None, list[str]]:
    """The first of ``ranked`` (None when empty) and the finding naming it with its test
    accuracy and, when given, what it cost."""
    if not len(ranked):
        return None, []
    name = ranked["approach"].iloc[0]
    text = f"best {what}: {name}, test accuracy {mean_text(scores.test.loc[name])}"
    return name, [text + (f", {cost(name)}" if cost else "")]


def _baseline_and_preset(scores: Scores) -> list[str]:
    """The best baseline, the best preset, and the preset minus the baseline."""
    test, seconds, rows = scores.test, scores.seconds, scores.rows
    baseline, findings = _best(
        scores,
        scores.baselines,
        "baseline on frozen features (by validation accuracy)",
        lambda name: f"fitted in {seconds.loc[name, 'mean']:.2f} s",
    )
    preset, best_preset = _best(
        scores,
        scores.presets,
        f"fine-tuning preset ({scores.by})",
        lambda name: (
            f"{int(rows.loc[name, 'trainable_parameters'])} trainable parameters, "
            f"{seconds.loc[name, 'mean']:.1f} s"
        ),
    )
    findings += best_preset
    if baseline is None or preset is None:
        return findings
    stats = test.loc[preset]
    gap = stats["mean"] - test.loc[baseline, "mean"]
    cost = seconds.loc[preset, "mean"] / max(seconds.loc[baseline, "mean"], 1e-9)
    verdict = (
        f", which {std_verdict(gap, stats)} of {preset} (the baseline is fitted "
        f"once, on the one source network's features)"
        if stats["seeds"] > 1
        else " (one seed: no seed-to-seed spread to compare with)"
    )
    findings.append(
        f"fine-tuning ({preset}) minus the baseline ({baseline}): test accuracy "
        f"{gap:+.4f}, at {cost:.1f} times the training time{verdict}"
    )
    return findings


def _tuned(scores: Scores, trials: pd.DataFrame | None) -> list[str]:
    """The tuned model's settings and score, and whether it beat the best untuned run."""
    row, test = scores.rows.loc["tuned"], scores.test
    optimizer = f"{row['optimizer']}, " if isinstance(row.get("optimizer"), str) else ""
    text = (
        f"tuned by the search ({optimizer}lr {row['lr']:.3g}, batch size "
        f"{int(row['batch_size'])}, dropout {row['dropout']:.3g}): test accuracy "
        f"{mean_text(test.loc['tuned'])}{trials_text(trials)}"
    )
    untuned = pd.concat([scores.presets, scores.optimizers])
    if not len(untuned):
        return [text]
    best = untuned.sort_values("mean", ascending=False, kind="stable").iloc[0]
    tuned_val, name = scores.val.set_index("approach").loc["tuned"], best["approach"]
    tests = f"test {mean_text(test.loc['tuned'])} vs {mean_text(test.loc[name])}"
    if tuned_val["mean"] > best["mean"]:
        return [
            text,
            f"tuning beat the best untuned run ({name}) on validation accuracy: "
            f"{fmt(tuned_val['mean'])} vs {fmt(best['mean'])} ({tests})",
        ]
    return [
        text,
        f"tuning did not beat the best untuned run: {name} has validation "
        f"accuracy {fmt(best['mean'])}, the tuned model {fmt(tuned_val['mean'])} "
        f"({tests}); prefer {name}, or give the search more trials",
    ]


def _early_stopping(summary: pd.DataFrame, repeated: bool) -> list[str]:
    stopped = summary[summary["stopped_epoch"].notna()] if "stopped_epoch" in summary else []
    if not len(stopped):
        return []
    return [
        "early stopping ended "
        + ", ".join(
            f"{row.approach}"
            + (f" (seed {int(row.seed)})" if repeated else "")
            + f" at epoch {int(row.stopped_epoch)} (best {int(row.best_epoch)})"
            for row in stopped.itertuples()
        )
    ]


def transfer_problems(summary: pd.DataFrame) -> list[str]:
    """Diverged fine-tuning runs and baselines whose solver stopped before converging."""
    problems = diverged(summary, "approach")
    if "converged" in summary:
        problems += [
            f"{row.approach} did not converge (max_iter reached)"
            for row in summary.itertuples()
            if row.converged is False or row.converged == "False"
        ]
    return problems
