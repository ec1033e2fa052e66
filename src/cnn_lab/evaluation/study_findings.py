"""Findings of the initialisation, CAM and transfer studies, in numbers computed
from each run's own tables (the depth study's are in :mod:`depth_findings`).

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

# --- init_study -------------------------------------------------------------------------

SCHEME_WORDS = {
    "DT": "default init, trained",
    "HT": "by-hand 0/1 kernels, trained",
    "HF": "by-hand 0/1 kernels, frozen",
}


def _gap(base: pd.Series, other: pd.Series, what: str, why: str = "") -> str:
    why = f" ({why})" if why else ""
    return (
        f"{other['run']}{why} minus {base['run']}: {what} {other['mean'] - base['mean']:+.4f} "
        f"({mean_text(other)} vs {mean_text(base)}){spread_verdict(base, other)}"
    )


def init_findings(summary: pd.DataFrame, differences: pd.DataFrame) -> list[str]:
    """Per network, the hand-set and frozen first layers against the default init (final
    test accuracy, with the seed-to-seed spread when runs repeat); the second network
    against the first; what freezing saves; and the check that the runs started alike."""
    metric = "final test accuracy"
    stats = seed_statistics(summary, ["network", "scheme", "run"], "final_test_accuracy")
    by_run = stats.set_index("run", drop=False)
    best = seed_statistics(summary, ["run"], "max_test_accuracy").set_index("run")
    findings = []
    for _, rows in stats.groupby("network", sort=False):
        schemes = rows.set_index("scheme", drop=False)
        if "DT" not in schemes.index:
            continue
        base = schemes.loc["DT"]
        findings.append(
            f"{base['run']} ({SCHEME_WORDS['DT']}): {metric} {mean_text(base)}, best over "
            f"epochs {mean_text(best.loc[base['run']])}"
        )
        for scheme in ("HT", "HF"):
            if scheme in schemes.index:
                findings.append(_gap(base, schemes.loc[scheme], metric, SCHEME_WORDS[scheme]))
    pairs = [
        ("NetA1-DT", "NetA2-DT", "architecture: a second convolution, both default init"),
        ("NetA1-HF", "NetA2-HF", "recovery: a trained convolution after the frozen one"),
    ]
    for first, second, why in pairs:
        if first in by_run.index and second in by_run.index:
            findings.append(f"{why}: " + _gap(by_run.loc[first], by_run.loc[second], metric))
    runs = summary.drop_duplicates("run").set_index("run")
    for network in ("NetA1", "NetA2"):
        hf, dt = f"{network}-HF", f"{network}-DT"
        if hf in runs.index and dt in runs.index:
            speed = summary.groupby("run")["seconds_per_batch"].mean()
            findings.append(
                f"freezing the first layer of {network} trains "
                f"{int(runs.loc[hf, 'trainable_parameters'])} of "
                f"{int(runs.loc[hf, 'parameters'])} parameters (DT: "
                f"{int(runs.loc[dt, 'trainable_parameters'])}) at "
                f"{1e3 * speed[hf]:.3f} ms per batch vs {1e3 * speed[dt]:.3f} ms for {dt}"
            )
    identical = int(differences["identical"].sum())
    findings.append(
        f"controlled start: {identical} of {len(differences)} initial tensors the runs must "
        f"share are identical"
        + (" (all of them)" if identical == len(differences) else " (see problems)")
    )
    return findings


def initial_check(differences: pd.DataFrame) -> pd.DataFrame:
    """The initial-tensor check in a few rows: per tensor and reason to share it, how many
    pairs of runs were compared, how many were identical, and the largest difference."""
    return (
        differences.groupby(["tensor", "shared_because"], sort=False)
        .agg(
            pairs=("identical", "size"),
            identical=("identical", "sum"),
            max_difference_norm=("difference_norm", "max"),
        )
        .reset_index()
    )


def init_problems(differences: pd.DataFrame) -> list[str]:
    """Initial tensors that should have been shared but were not: the comparison of those
    runs is not controlled."""
    differing = differences[~differences["identical"]]
    return [
        f"initial tensor {row.tensor} differs between {row.run_a} and {row.run_b} "
        f"(difference norm {row.difference_norm:.4g}"
        + (f", seed {row.seed}" if "seed" in differences else "")
        + ")"
        for row in differing.itertuples()
    ]


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
