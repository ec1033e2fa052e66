"""Findings of the CAM study, in numbers computed from the run's own localisation and
model tables: for each model, which saliency method localises best against the chance
maps and the runner-up (with the spread across seeds when there are several), which is
most faithful, what each costs, and what each model trained."""

from __future__ import annotations

import pandas as pd

from cnn_lab.evaluation.findings import fmt, mean_text, seed_statistics, spread_verdict, std_verdict


def _stats(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    return seed_statistics(rows, ["method"], metric).set_index("method")


def _localisation_text(model: str, rows: pd.DataFrame, iou: float) -> str:
    """The model's best and second-best method by localisation, against the best chance
    map, with the seed spread."""
    methods = rows[rows["kind"] == "saliency"]
    chance = rows[rows["kind"] == "chance"]
    local = _stats(methods, "localisation").sort_values("mean", ascending=False)
    best = local.iloc[0]
    images = int(methods["images"].iloc[0])
    pointing = _stats(methods, "pointing_game").loc[best.name]
    text = (
        f"{model} ({images} test images): best localisation by {best.name}, "
        f"{mean_text(best)} (share of boxes with IoU >= {iou:g} with the object's box; "
        f"pointing game {mean_text(pointing)})"
    )
    if len(local) > 1:
        second = local.iloc[1]
        text += (
            f"; next {second.name} {fmt(second['mean'])}, gap "
            f"{best['mean'] - second['mean']:+.4f}" + spread_verdict(second, best)
        )
    if not chance.empty:
        top = _stats(chance, "localisation").sort_values("mean", ascending=False).iloc[0]
        gap = best["mean"] - top["mean"]
        text += f"; the better chance map ({top.name}) {fmt(top['mean'])}, gap {gap:+.4f}"
        if best["seeds"] > 1:  # chance maps do not vary with the model's seed
            text += f", which {std_verdict(gap, best)}"
        aim = _stats(chance, "pointing_game").sort_values("mean", ascending=False).iloc[0]
        verdict = "above" if pointing["mean"] > aim["mean"] else "not above"
        text += f"; its pointing game is {verdict} the {aim.name} map's {fmt(aim['mean'])}"
    return text


def _faithfulness_text(model: str, rows: pd.DataFrame) -> str:
    """The model's most faithful method by deletion (low) and insertion (high), and the
    cost of each method."""
    deletion = _stats(rows, "deletion_auc").sort_values("mean")
    insertion = _stats(rows, "insertion_auc").sort_values("mean", ascending=False)
    cost = _stats(rows[rows["kind"] == "saliency"], "ms_per_image")
    costs = ", ".join(f"{m} {row['mean']:.1f}" for m, row in cost.iterrows())
    return (
        f"{model} faithfulness: lowest deletion AUC {deletion.index[0]} "
        f"{mean_text(deletion.iloc[0])} (highest {deletion.index[-1]} "
        f"{fmt(deletion.iloc[-1]['mean'])}); highest insertion AUC {insertion.index[0]} "
        f"{mean_text(insertion.iloc[0])} (lowest {insertion.index[-1]} "
        f"{fmt(insertion.iloc[-1]['mean'])}); milliseconds per image: {costs}"
    )


def cam_findings(localisation: pd.DataFrame, models: pd.DataFrame, iou: float) -> list[str]:
    """Per model: the method that localises best, its gap to the runner-up and to the
    better chance map (against the seed spread with several seeds), the most faithful
    method and each method's time; then what each model trained."""
    findings = []
    for model, rows in localisation.groupby("model", sort=False):
        accuracy = _stats(rows, "accuracy").iloc[0]
        has_boxes = rows["localisation"].notna().any()
        if has_boxes and (rows["kind"] == "saliency").any():
            findings.append(_localisation_text(str(model), rows, iou))
        elif not has_boxes:
            findings.append(
                f"{model}: the data has no object boxes, so localisation is not measured"
            )
        findings.append(_faithfulness_text(str(model), rows))
        findings.append(f"{model}: accuracy on those test images {mean_text(accuracy)}")
    for _, row in models.drop_duplicates("model").iterrows():
        findings.append(
            f"{row['model']}: {int(row['trainable_parameters'])} of {int(row['parameters'])} "
            f"parameters trained for {int(row['epochs_run'])} epoch(s), weights "
            f"{row['weights_used']}"
        )
    return findings
