"""Thin nodes of the artworks study: they call library code and hand results to the catalog."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from torch import nn

from cnn_lab.data.artworks import (
    decode_index,
    index_artworks,
    open_store,
    split_artworks,
    split_counts,
)
from cnn_lab.data.image_cache import channel_statistics
from cnn_lab.evaluation import class_plots, class_report
from cnn_lab.evaluation.dataset_analysis import ImageSplits, store_splits
from cnn_lab.evaluation.findings import across_seeds, statistic_columns, with_seed_statistics
from cnn_lab.models.resnet_variants import build_variant
from cnn_lab.pipelines.artworks.findings import (
    ARTWORKS_STATISTICS,
    artworks_findings,
    artworks_problems,
)
from cnn_lab.runtime.tracking import log_dict, log_figures, log_metrics, log_table
from cnn_lab.study import reporting, store_jobs
from cnn_lab.study.spec import Variant, repeat_over_seeds
from cnn_lab.study.summary import PER_SAMPLE
from cnn_lab.study.train import train_variant as train_in_run
from cnn_lab.training.recipe import TrainedModel

STUDY = "artworks"
HEADLINE = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1")
logger = logging.getLogger(__name__)


def index_images(config: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Table of every image of every known artist; stops at once when the data is absent."""
    data = config["data"]
    index = index_artworks(
        data["root"], csv=data["csv"], images=data["images"], exclude=data["exclude_artists"]
    )
    report = index.report()
    report["class_names"] = index.class_names
    logger.info("artworks: indexed %d images of %d artists", report["images"], report["artists"])
    listed = ("artists_without_images", "folders_without_artist", "duplicate_files")
    counts = {"images_indexed": report["images"], "artists": report["artists"]}
    log_metrics({**counts, **{name: len(report[name]) for name in listed}})
    log_dict(report, "data/index_report.json")
    return index.table, report


def decode_images(index: pd.DataFrame, config: dict[str, Any]) -> tuple[pd.DataFrame, dict]:
    """Decode (and cache) every image once; unreadable files are listed and skipped."""
    images, report = decode_index(index, config["data"])
    log_metrics({"unreadable_images": len(report["unreadable"])})
    log_dict(report, "data/decode_report.json")
    return images, report


def split_images(
    images: pd.DataFrame, index_report: dict[str, Any], config: dict[str, Any]
) -> dict[str, Any]:
    """Stratified train/val/test indices into the readable-image table."""
    return split_artworks(images, index_report["class_names"], config["data"], config["seed"])


def normalisation_stats(
    images: pd.DataFrame, decoded: dict[str, Any], split: dict[str, Any], config: dict
) -> dict[str, Any]:
    """Per-channel mean and std of the training split (never of val/test)."""
    store = open_store(images, decoded, config["data"]["root"])
    mean, std = channel_statistics(store, split["train"])
    logger.info("artworks: training-split mean %s, std %s", mean, std)
    return {"mean": list(mean), "std": list(std), "images": len(split["train"])}


def class_counts_figure(images: pd.DataFrame, split: dict[str, Any]) -> Figure:
    figure = class_plots.class_counts(split_counts(images, split))
    log_figures({"class_counts": figure})
    return figure


def variants(config: dict[str, Any]) -> list[Variant]:
    """Every variant of ``run``, once per training seed."""
    return repeat_over_seeds(STUDY, config, [(None, name, {}) for name in config["run"]])


VARIANT_FIGURES = ("confusion_matrix", "misclassified")


def train_variant(
    images: pd.DataFrame,
    decoded: dict[str, Any],
    split: dict[str, Any],
    normalisation: dict[str, Any],
    index_report: dict[str, Any],
    config: dict[str, Any],
    *,
    variant: Variant,
) -> tuple[dict[str, Any], nn.Module, Figure, Figure]:
    """Train one variant with its seed in its own nested MLflow run, from the decoded-image
    store with a class-weighted loss, and score it on the test split."""
    job, describe, store = store_jobs.variant_job(
        variant, config, images, decoded, split, normalisation, index_report
    )
    drawn: dict[str, Figure] = {}
    count, title = config["report"]["misclassified"], f"{STUDY}: {variant.label}"

    def figures(trained: TrainedModel, result: dict[str, Any]) -> dict[str, Figure]:
        """The test confusion matrix (rows normalised) and a grid of paintings the variant
        got wrong (a seeded sample of ``report.misclassified`` of them)."""
        log_table(pd.DataFrame(result["per_class"]), "tables/per_class_report.csv")
        drawn.update(class_report.mistake_figures(store.read, result, title, count, variant.seed))
        return drawn

    top_k = config["report"]["top_k"]
    metrics = (*(f"test_{m}" for m in HEADLINE), f"test_top{top_k}_accuracy", "train_seconds")
    result, model = train_in_run(variant, job, config, describe, metrics=metrics, figures=figures)
    # A reused variant logged its figures when it finished: draw them again for the report.
    drawn = drawn or class_report.mistake_figures(store.read, result, title, count, variant.seed)
    return result, model, *(drawn[name] for name in VARIANT_FIGURES)


def summarise(*results: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, Figure]:
    """One row per variant and training seed, with each variant's mean and std across
    seeds beside it; the per-class reports side by side; and a comparison chart (means,
    error bars one std)."""
    bulky = ("class_names", "test_rows", "y_true", "y_pred", "per_class", *PER_SAMPLE)
    summary = pd.DataFrame([{k: v for k, v in r.items() if k not in bulky} for r in results])
    summary = with_seed_statistics(summary, ["variant"], ARTWORKS_STATISTICS)
    per_class = class_report.per_class_table(results)
    metrics = [f"test_{m}" for m in HEADLINE] + [
        c for c in summary.columns if c.startswith("test_top") and not c.endswith(("_mean", "_std"))
    ]
    figure = class_plots.compare_variants(summary, metrics)
    log_table(summary, "tables/summary.csv")
    log_table(per_class, "tables/per_class_report.csv")
    log_figures({"variant_comparison": figure})
    return summary, per_class, figure


def analysis_data(
    images: pd.DataFrame,
    decoded: dict[str, Any],
    split: dict[str, Any],
    index_report: dict[str, Any],
    config: dict[str, Any],
) -> ImageSplits:
    """The decoded-image store as the shared dataset analysis reads it: labels per split
    and training images read on demand (a subsample, and chunks for the statistics)."""
    return store_splits(
        STUDY,
        open_store(images, decoded, config["data"]["root"]),
        images["label"].to_numpy(),
        split,
        index_report["class_names"],
    )


def analysis_model(
    config: dict[str, Any],
    index_report: dict[str, Any],
    normalisation: dict[str, Any],
    *variants: Any,
) -> dict[str, Any]:
    """The variant with the best validation accuracy (``variants`` alternate a result and
    its weights, the first training seed's), for the penultimate-feature map of the
    dataset analysis; no model when none has a finite validation accuracy."""
    best = reporting.best_trained("best_val_accuracy", *variants)
    if best is None:
        return {"model": None}
    (result, state), k = best, len(index_report["class_names"])
    name = result["variant"]
    # The saved state replaces the pretrained weights: nothing to download.
    model = build_variant(name, num_classes=k, model=config["model"], weights=None)
    model.load_state_dict(state)
    return {"model": model, "input_size": None, "normalisation": normalisation, "label": name}


COUNT_COLUMNS = ("seed", "image_size", "parameters", "trainable_parameters", "epochs_run")


def write_report(
    raw_params: dict[str, Any],
    config: dict[str, Any],
    images: pd.DataFrame,
    split: dict[str, Any],
    index_report: dict[str, Any],
    decoded: dict[str, Any],
    summary: pd.DataFrame,
    per_class: pd.DataFrame,
    analysis: dict[str, Any],
    claims: pd.DataFrame,
    class_counts: str,
    variant_comparison: str,
    confusion: str,
    *variant_figures: str,
) -> tuple[str, str]:
    """The run's report (HTML and Markdown), also logged to MLflow: the best variant
    against the others and chance, the per-artist F1, every figure (``variant_figures``:
    each variant's :data:`VARIANT_FIGURES`, in the order of ``summary``) and the dataset
    analysis; with several seeds, the first seed's variant figures and the mean and std
    across seeds)."""
    k = len(index_report["class_names"])
    figures = {"class_counts": class_counts, "variant_comparison": variant_comparison}
    names = [f"{v} {f}" for v in summary["variant"].unique() for f in VARIANT_FIGURES]
    figures |= dict(zip(names, variant_figures, strict=True))
    across = across_seeds(summary, ["variant"], ARTWORKS_STATISTICS)
    repeated = across["seeds"].max() > 1
    mean = " (mean over seeds)" if repeated else ""
    run = reporting.RunInputs(raw_params, config, None, split, summary, analysis, claims, confusion)
    return reporting.report_of(
        STUDY,
        run,
        dataset=f"Best Artworks of All Time ({k} artists, {len(images)} readable images, "
        f"{decoded['image_size']} px)",
        tables={
            "summary (test split)": reporting.with_integers(
                summary.drop(columns=statistic_columns(ARTWORKS_STATISTICS)), COUNT_COLUMNS
            ),
            **({"mean and std across seeds (test split)": across} if repeated else {}),
            f"F1 per artist by variant (test split{mean})": class_report.per_class_f1(per_class),
        },
        figures=figures,
        findings=artworks_findings(summary, k),
        problems=artworks_problems(summary, decoded, index_report),
    )
