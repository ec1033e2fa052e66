"""Every recorded variant run of every study, compared across ``kedro run``s.

``notebooks/compare_runs.ipynb`` reads the MLflow store with ``mlflow.search_runs`` and hands
the frame here: one tidy table per study, and figures drawn by the same functions (and so in
the same colours) as the studies' reports.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from cnn_lab.evaluation import class_plots, plots

METRIC = "test_accuracy"


def variant_runs(runs: pd.DataFrame, metric: str = METRIC) -> dict[str, pd.DataFrame]:
    """``mlflow.search_runs`` output as one table per study (by the ``study`` tag): a row per
    variant run that logged ``metric``, with its ``study``, ``variant``, ``kedro_run`` (the
    parent run) and every ``params.*`` column that study logged, unprefixed."""
    needed = ["tags.study", "tags.variant", "tags.mlflow.parentRunId", f"metrics.{metric}"]
    if runs.empty or any(column not in runs for column in needed):
        return {}
    children = runs.dropna(subset=needed)
    tables = {}
    for study, rows in children.groupby("tags.study", sort=True):
        params = rows.filter(like="params.").dropna(axis=1, how="all")
        params.columns = [c.removeprefix("params.") for c in params.columns]
        table = pd.DataFrame(
            {
                "study": study,
                "variant": rows["tags.variant"],
                "kedro_run": rows["tags.mlflow.parentRunId"],
                "run_id": rows["run_id"],
                metric: rows[f"metrics.{metric}"].astype(float),
            }
        )
        extra = params.drop(columns=[c for c in params.columns if c in table], errors="ignore")
        tables[str(study)] = pd.concat([table, extra], axis=1).reset_index(drop=True)
    return tables


def study_figures(table: pd.DataFrame, metric: str = METRIC) -> dict[str, Figure]:
    """One study's runs drawn as its report draws them: ``metric`` by variant (mean over
    runs, error bars one standard deviation) and, where the variants are families at
    depths (``cnn_depth``), ``metric`` against depth, one line per family."""
    figures = {f"{metric} by variant": class_plots.compare_variants(table, [metric])}
    if {"family", "depth"} <= set(table.columns) and metric == METRIC:
        by_depth = table.assign(depth=table["depth"].astype(int))
        figures[f"{metric} by depth"] = plots.accuracy_vs_depth(by_depth)
    return figures
