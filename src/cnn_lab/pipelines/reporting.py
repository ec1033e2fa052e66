"""Kedro side of the results people read, shared by every study: the dataset-analysis
node (one factory, reused by each pipeline) and the run context a report states.

The work itself is library code in ``cnn_lab.evaluation`` (dataset_analysis, report);
these functions only read parameters, hand results to the catalog and log to MLflow.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from kedro.pipeline import Pipeline, node, pipeline
from pydantic import Field

from cnn_lab.params import StrictModel, validate_parameters

ANALYSIS_FIGURES = ("class_counts", "samples", "tsne")


class AnalysisParams(StrictModel):
    """``params:dataset_analysis``; the defaults keep the analysis to seconds on a CPU."""

    subsample: int = Field(300, ge=10, description="images in the t-SNE, stratified by class")
    perplexity: float = Field(30.0, gt=0)
    samples_per_class: int = Field(8, ge=1)
    seed: int = 0


def analyse(
    bundle: Any, split: dict[str, Any], options: dict[str, Any], model: Any = None
) -> tuple[Any, ...]:
    """Run the dataset analysis, log it to MLflow and return tables, figures and the
    section the study's report embeds. ``model``: None or {"model", "input_size"}."""
    from cnn_lab.evaluation.dataset_analysis import analyse_dataset
    from cnn_lab.evaluation.report import encode_figures
    from cnn_lab.tracking import log_figures, log_table

    params = validate_parameters(AnalysisParams, options or {}, "dataset_analysis")
    trained = model or {}
    result = analyse_dataset(
        bundle,
        split,
        subsample=params.subsample,
        perplexity=params.perplexity,
        samples_per_class=params.samples_per_class,
        seed=params.seed,
        model=trained.get("model"),
        input_size=trained.get("input_size"),
    )
    log_table(result.counts, "analysis/class_counts.csv")
    log_table(result.channel_stats, "analysis/channel_stats.csv")
    log_figures(result.figures, folder="analysis")
    section = {
        "tables": {
            "images per class and split": result.counts,
            "channel mean and std (training split, [0, 1] scale)": result.channel_stats,
        },
        "figures": encode_figures(result.figures),
    }
    figures = [result.figures[name] for name in ANALYSIS_FIGURES]
    return (result.counts, result.channel_stats, *figures, section)


def analysis_pipeline(study: str, model: str | None = None) -> Pipeline:
    """The analysis node of ``study``, reading ``<study>.dataset`` and ``<study>.split``;
    ``model`` names a dataset of {"model": nn.Module, "input_size": int | None}."""
    inputs = [f"{study}.dataset", f"{study}.split", "params:dataset_analysis"]
    if model is not None:
        inputs.append(model)
    return pipeline(
        [
            node(
                analyse,
                inputs,
                [
                    f"{study}.analysis.counts",
                    f"{study}.analysis.channel_stats",
                    *(f"{study}.analysis_figures.{name}" for name in ANALYSIS_FIGURES),
                    f"{study}.analysis.section",
                ],
                name=f"{study}.analyse_dataset",
            )
        ],
        tags=["analysis"],
    )


def run_context(study: str, raw_params: dict[str, Any]) -> dict[str, Any]:
    """What ran, as a report states it: env, git commit, MLflow run id, changed parameters."""
    from cnn_lab.evaluation.report import changed_parameters, git_commit
    from cnn_lab.hooks import default_parameters, run_env
    from cnn_lab.settings import find_project_root
    from cnn_lab.tracking import active_run_id

    return {
        "study": study,
        "env": run_env(),
        "git_commit": git_commit(find_project_root()),
        "mlflow_run_id": active_run_id(),
        "changed_parameters": changed_parameters(raw_params, default_parameters(study), study),
    }


def split_sizes(bundle: Any, split: dict[str, Any]) -> dict[str, int]:
    sizes = {}
    for name in ("train", "val", "test"):
        part = split.get(name)
        if part == "official":
            sizes[name] = len(bundle.test) if bundle.test is not None else 0
        elif part is not None:
            sizes[name] = len(part)
    return sizes


def publish(report: Any) -> tuple[str, str]:
    """Render ``report`` to (HTML, Markdown) and log both to the run's MLflow artifacts."""
    from cnn_lab.evaluation.report import render
    from cnn_lab.tracking import log_text

    html, markdown = render(report)
    log_text(html, "report/report.html")
    log_text(markdown, "report/report.md")
    return html, markdown


def section_tables(section: dict[str, Any] | None) -> dict[str, pd.DataFrame]:
    return dict((section or {}).get("tables", {}))
