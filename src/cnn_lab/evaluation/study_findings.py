"""Findings of the CAM and artworks studies, in numbers computed from each run's own
tables (the other studies' are in their own folders, ``pipelines/<study>/findings.py``).

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

# --- cam --------------------------------------------------------------------------------


CAM_METRICS = ("localisation", "pointing_game", "mean_iou", "accuracy")


def cam_seed_table(localisation: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each model's CAM scores and accuracy."""
    cams = localisation[localisation["kind"] == "cam"]
    table = cams.groupby("method", sort=False)[list(CAM_METRICS)].agg(["mean", "std"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    return table.assign(seeds=cams.groupby("method", sort=False).size()).reset_index()


def cam_findings(localisation: pd.DataFrame, models: pd.DataFrame, iou: float) -> list[str]:
    """Each model's CAM localisation against the chance maps (uniform and centred) and
    the ratio to the better one, its pointing game against the centred map's, and its
    test accuracy; with several seeds the means, stds and whether the gap to chance (and
    between the best two models) exceeds the seed-to-seed spread."""
    cams = localisation[localisation["kind"] == "cam"]
    chance = localisation[localisation["kind"] == "chance"].set_index("method")
    stats = {
        metric: seed_statistics(cams, ["method"], metric).set_index("method")
        for metric in CAM_METRICS
    }
    findings = []
    for method, layer in cams.drop_duplicates("method")[["method", "feature_layer"]].values:
        local, accuracy = stats["localisation"].loc[method], stats["accuracy"].loc[method]
        if chance.empty or pd.isna(local["mean"]):
            findings.append(
                f"{method}: test accuracy {mean_text(accuracy)}; the data has no object "
                f"boxes, so localisation is not measured"
            )
            continue
        against = ", ".join(
            f"{fmt(chance.loc[name, 'localisation'])} for the {name.removeprefix('chance_')} "
            f"chance map"
            for name in chance.index
        )
        images = int(cams[cams["method"] == method]["images"].iloc[0])
        text = (
            f"{method} (CAMs of layer {layer}, {images} test images): localisation "
            f"{mean_text(local)} (share of CAM boxes with IoU >= {iou:g} with the object's "
            f"box) vs {against}"
        )
        best_chance = chance["localisation"].max()
        if best_chance > 0:
            text += f"; {local['mean'] / best_chance:.2f} times the better chance map"
        if local["seeds"] > 1:  # chance maps are exact: the spread is the model's own
            gap = local["mean"] - best_chance
            text += f"; the gap to it, {gap:+.4f}, {std_verdict(gap, local)}"
        if "chance_centred" in chance.index:
            text += (
                f"; pointing game {mean_text(stats['pointing_game'].loc[method])} vs "
                f"{fmt(chance.loc['chance_centred', 'pointing_game'])} (centred map)"
            )
        findings.append(text + f"; test accuracy {mean_text(accuracy)}")
    local = stats["localisation"]
    if len(local) > 1 and not chance.empty and local["mean"].notna().all():
        ranked = local.sort_values("mean", ascending=False)
        best, second = ranked.iloc[0], ranked.iloc[1]
        findings.append(
            f"best localisation: {best.name} minus {second.name}: "
            f"{best['mean'] - second['mean']:+.4f}" + spread_verdict(second, best)
        )
    for _, row in models.drop_duplicates("model").iterrows():
        findings.append(
            f"{row['model']}: {int(row['trainable_parameters'])} of {int(row['parameters'])} "
            f"parameters trained for {int(row['epochs_run'])} epoch(s), weights "
            f"{row['weights_used']}"
        )
    return findings


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
