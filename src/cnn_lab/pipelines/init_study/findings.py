"""Findings of the initialisation study, in numbers computed from the run's own tables:
none of them knows a result in advance, so a report can only say what its run measured."""

from __future__ import annotations

import pandas as pd

from cnn_lab.evaluation.findings import mean_text, seed_statistics, spread_verdict

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
