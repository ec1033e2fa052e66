"""Findings of the transfer and artworks studies, in numbers computed from each run's own
tables (the depth study's are in :mod:`depth_findings`, the initialisation study's in
:mod:`cnn_lab.pipelines.init_study.findings`, the CAM study's in
:mod:`cnn_lab.pipelines.cam.findings`).

Every function takes the tables the study's pipeline writes and returns sentences; none
of them knows a result in advance, so a report can only say what its run measured.
"""

from __future__ import annotations

from collections.abc import Mapping
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

# --- transfer ---------------------------------------------------------------------------

TRANSFER_KEYS = ("group", "approach")
TRANSFER_STATISTICS = ("val_accuracy", "test_accuracy", "train_seconds")


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
    """The best feature baseline against the best fine-tuning preset (each chosen by
    validation accuracy, compared on the test set), the best optimizer, the tuned model,
    early stopping, and the source network the features come from. With several seeds
    the fine-tuning runs are ranked by their mean, quoted as mean ± std, and each gap is
    judged against the seed-to-seed spread (the baselines are fitted once: exact)."""
    findings = []
    if source.get("trained"):
        findings.append(
            f"source network trained on {source.get('dataset')}: test accuracy "
            f"{fmt(source['test_accuracy'])} ({source['train_seconds']:.1f} s)"
        )
    else:
        findings.append(f"source network not trained here: weights {source.get('weights')}")
    val = seed_statistics(summary, TRANSFER_KEYS, "val_accuracy")
    test = seed_statistics(summary, TRANSFER_KEYS, "test_accuracy").set_index("approach")
    seconds = seed_statistics(summary, TRANSFER_KEYS, "train_seconds").set_index("approach")
    repeated = int(val["seeds"].max()) > 1 if len(val) else False
    by = "by validation accuracy" + (", mean over seeds" if repeated else "")
    rows = summary.drop_duplicates("approach").set_index("approach")
    baselines, presets = _ranked(val, "baseline"), _ranked(val, "finetune")
    baseline = presets_best = None
    if len(baselines):
        baseline = baselines["approach"].iloc[0]
        findings.append(
            f"best baseline on frozen features (by validation accuracy): {baseline}, "
            f"test accuracy {mean_text(test.loc[baseline])}, fitted in "
            f"{seconds.loc[baseline, 'mean']:.2f} s"
        )
    if len(presets):
        presets_best = presets["approach"].iloc[0]
        findings.append(
            f"best fine-tuning preset ({by}): {presets_best}, test accuracy "
            f"{mean_text(test.loc[presets_best])}, "
            f"{int(rows.loc[presets_best, 'trainable_parameters'])} trainable parameters, "
            f"{seconds.loc[presets_best, 'mean']:.1f} s"
        )
    if baseline is not None and presets_best is not None:
        preset = test.loc[presets_best]
        gap = preset["mean"] - test.loc[baseline, "mean"]
        cost = seconds.loc[presets_best, "mean"] / max(seconds.loc[baseline, "mean"], 1e-9)
        verdict = (
            f", which {std_verdict(gap, preset)} of {presets_best} (the baseline is fitted "
            f"once, on the one source network's features)"
            if preset["seeds"] > 1
            else " (one seed: no seed-to-seed spread to compare with)"
        )
        findings.append(
            f"fine-tuning ({presets_best}) minus the baseline ({baseline}): test accuracy "
            f"{gap:+.4f}, at {cost:.1f} times the training time{verdict}"
        )
    optimizers = _ranked(val, "optimizers")
    for name, ranked in (("fine-tuning presets", presets), ("optimizers", optimizers)):
        text = _runner_up(name, ranked, test)
        if text:
            findings.append(text)
    if len(optimizers):
        best = optimizers["approach"].iloc[0]
        findings.append(f"best optimizer ({by}): {best}, test accuracy {mean_text(test.loc[best])}")
    if "tuned" in rows.index:
        row = rows.loc["tuned"]
        optimizer = f"{row['optimizer']}, " if isinstance(row.get("optimizer"), str) else ""
        text = (
            f"tuned by the search ({optimizer}lr {row['lr']:.3g}, batch size "
            f"{int(row['batch_size'])}, dropout {row['dropout']:.3g}): test accuracy "
            f"{mean_text(test.loc['tuned'])}"
        )
        if trials is not None and "state" in trials:
            pruned = int((trials["state"] == "PRUNED").sum())
            text += f"; {len(trials)} trial(s) in the study, {pruned} pruned"
            if "user_attrs_enqueued_from" in trials:
                seeded = trials["user_attrs_enqueued_from"].dropna()
                if len(seeded):
                    text += f"; the search started from the untuned run {seeded.iloc[0]}"
        findings.append(text)
        untuned = pd.concat([presets, optimizers])
        if len(untuned):
            best = untuned.sort_values("mean", ascending=False, kind="stable").iloc[0]
            tuned_val = val.set_index("approach").loc["tuned"]
            name = best["approach"]
            tests = f"test {mean_text(test.loc['tuned'])} vs {mean_text(test.loc[name])}"
            if tuned_val["mean"] > best["mean"]:
                findings.append(
                    f"tuning beat the best untuned run ({name}) on validation accuracy: "
                    f"{fmt(tuned_val['mean'])} vs {fmt(best['mean'])} ({tests})"
                )
            else:
                findings.append(
                    f"tuning did not beat the best untuned run: {name} has validation "
                    f"accuracy {fmt(best['mean'])}, the tuned model {fmt(tuned_val['mean'])} "
                    f"({tests}); prefer {name}, or give the search more trials"
                )
    stopped = summary[summary["stopped_epoch"].notna()] if "stopped_epoch" in summary else []
    if len(stopped):
        findings.append(
            "early stopping ended "
            + ", ".join(
                f"{row.approach}"
                + (f" (seed {int(row.seed)})" if repeated else "")
                + f" at epoch {int(row.stopped_epoch)} (best {int(row.best_epoch)})"
                for row in stopped.itertuples()
            )
        )
    return findings


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


# --- artworks ---------------------------------------------------------------------------


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
    """Diverged variants, unreadable images skipped, and indexing leftovers (artists
    without images, folders without an artist), each named."""
    problems = diverged(summary, "variant")
    problems += [
        f"unreadable image skipped: {path} ({error})"
        for path, error in (decoded.get("unreadable") or {}).items()
    ]
    problems += [
        f"artist without images, left out: {name}"
        for name in index_report.get("artists_without_images", [])
    ]
    problems += [
        f"image folder without an artist in the CSV, left out: {name}"
        for name in index_report.get("folders_without_artist", [])
    ]
    problems += [
        f"artist excluded (artworks.data.exclude_artists): {name}"
        for name in index_report.get("excluded_artists", [])
    ]
    problems += [
        f"duplicate file counted once: {path}" for path in index_report.get("duplicate_files", [])
    ]
    return problems
