"""Findings of the CAM study, in numbers computed from the run's own localisation and
model tables: each model's localisation against the chance maps, with the spread across
seeds when there are several, and what each model trained."""

from __future__ import annotations

import pandas as pd

from cnn_lab.evaluation.findings import fmt, mean_text, seed_statistics, spread_verdict, std_verdict

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
