"""Thin nodes of the depth study: they call library code and hand results to the catalog."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from cnn_lab.data.sources import DatasetBundle, load_source
from cnn_lab.evaluation import plots
from cnn_lab.evaluation.findings import diverged
from cnn_lab.models import build_model, count_parameters
from cnn_lab.pipelines.cnn_depth.findings import depth_findings, seed_statistics
from cnn_lab.runtime.tracking import log_figures, log_metrics, log_text
from cnn_lab.study import reporting
from cnn_lab.study.params import ParameterError, unreached_overrides
from cnn_lab.study.spec import Variant, repeat_over_seeds
from cnn_lab.study.summary import summarise as study_summary
from cnn_lab.study.train import Job, outcome, study_recipe
from cnn_lab.study.train import train_variant as train_variant_in_run
from cnn_lab.training.augment import crop_and_flip
from cnn_lab.training.recipe import Recipe, SplitData, TrainedModel

STUDY = "cnn_depth"
logger = logging.getLogger(__name__)


def variants(config: dict[str, Any]) -> list[Variant]:
    """Every enabled group's families at every depth, once per training seed."""
    entries = [
        (group, f"{family}_d{depth}", {"family": family, "depth": depth})
        for group, family, depth in enabled_variants(config)
    ]
    return repeat_over_seeds(STUDY, config, entries)


def check_config(config: dict[str, Any], raw: dict[str, Any]) -> None:
    """A command-line override of ``training`` that some group overrides again is logged."""
    for warning in _unreached(raw):
        logger.warning("[%s] %s", STUDY, warning)


def _unreached(raw: dict[str, Any]) -> list[str]:
    from cnn_lab.runtime.hooks import runtime_parameters

    return unreached_overrides(STUDY, raw, runtime_parameters().get(STUDY) or {})


def image_size(config: dict[str, Any], group: str) -> int | None:
    """The group's ``image_size``, else ``data.image_size``; None keeps the stored size."""
    return config["groups"][group]["image_size"] or config["data"]["image_size"]


def input_shape(bundle: DatasetBundle, config: dict[str, Any], group: str) -> tuple[int, ...]:
    """The shape the group's models see: the stored images, resized if configured."""
    channels, height, width = bundle.train.image_shape
    size = image_size(config, group)
    return (channels, size, size) if size else (channels, height, width)


def enabled_variants(config: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(group, family, depth) of every enabled group, each once."""
    triples = [
        (group, family, depth)
        for group, spec in config["groups"].items()
        if spec["enabled"]
        for family in spec["families"]
        for depth in spec["depths"]
    ]
    return list(dict.fromkeys(triples))


def variant_model(
    bundle: DatasetBundle, config: dict[str, Any], group: str, family: str, depth: int
) -> nn.Module:
    """The network of ``family`` at ``depth`` with the group's model options, for the
    group's input shape."""
    return build_model(
        family,
        in_shape=input_shape(bundle, config, group),
        num_classes=bundle.train.num_classes,
        depth=depth,
        **config["groups"][group]["model"],
    )


def check_variants(bundle: DatasetBundle, config: dict[str, Any]) -> None:
    """Build every variant on the meta device (no memory, no compute) so a depth or an
    input size a family cannot take fails now, naming the parameter, not mid-study."""
    problems = []
    for group, family, depth in enabled_variants(config):
        try:
            with torch.device("meta"):
                variant_model(bundle, config, group, family, depth)
        except ValueError as err:
            shape = "x".join(map(str, input_shape(bundle, config, group)))
            problems.append(
                f"{STUDY}.groups.{group} ({family}, depths entry {depth}, "
                f"model options {config['groups'][group]['model']}, inputs {shape}): {err}"
            )
    if problems:
        header = f"{len(problems)} variant(s) cannot be built (conf/<env>/parameters_*.yml):"
        raise ParameterError("\n  ".join([header, *problems]))


def prepare_dataset(config: dict[str, Any]) -> DatasetBundle:
    """Load the source, record unreadable images that were skipped, and check that every
    variant can be built for its input shape before anything trains."""
    bundle = load_source(config["data"], key=f"{STUDY}.data")
    if config["data"]["source"] == "image_folder":
        logger.info(
            "[%s] image folder %s: %d images, %d classes, %d unreadable skipped",
            STUDY,
            config["data"]["root"],
            len(bundle.train),
            bundle.train.num_classes,
            len(bundle.skipped),
        )
        log_metrics({"skipped_images": len(bundle.skipped)})
        if bundle.skipped:
            log_text("\n".join(bundle.skipped) + "\n", "data/skipped_images.txt")
    check_variants(bundle, config)
    return bundle


def group_recipe(config: dict[str, Any], group: str, seed: int) -> Recipe:
    """The training recipe of one variant group, as the study runs it."""
    training = dict(config["groups"][group]["training"])
    training["milestones"] = tuple(training["milestones"])
    probe = config["probe_batch_size"]
    return study_recipe(config, training, seed, probe_batch_size=probe)


def train_variant(
    bundle: DatasetBundle, split: dict[str, Any], config: dict[str, Any], *, variant: Variant
) -> tuple[dict[str, Any], nn.Module]:
    """Train one (family, depth) variant with its seed, in its own nested MLflow run."""
    group, family, depth = variant.group, variant["family"], variant["depth"]
    options, augment = config["groups"][group]["model"], config["data"]["augment"]
    shape = input_shape(bundle, config, group)

    def build() -> nn.Module:
        return variant_model(bundle, config, group, family, depth)

    params = {
        "study": STUDY,
        "group": group,
        "family": family,
        "depth": depth,
        "dataset": bundle.name,
        "parameters": count_parameters(build()),
        "image_size": "x".join(map(str, shape[1:])),
        "skipped_images": len(bundle.skipped),
        **{f"augment_{k}": v for k, v in augment.items()},
        **options,
        **config["groups"][group]["training"],
        "seed": variant.seed,
    }
    crops = augment["crop_padding"] or augment["flip"]
    job = Job(
        build,
        SplitData.from_bundle(bundle, split),
        group_recipe(config, group, variant.seed),
        params,
        key=(split,),
        tags={"family": family},
        augment=crop_and_flip(augment["crop_padding"], augment["flip"]) if crops else None,
        input_size=image_size(config, group),
    )

    def describe(trained: TrainedModel) -> dict[str, Any]:
        row = outcome(trained)
        return {
            "variant": variant.label,
            **{k: params[k] for k in ("group", "family", "depth", "seed")},
            "width": options.get("width"),
            "parameters": params["parameters"],
            **{k: row[k] for k in ("status", "diverged_epoch", "epochs_run")},
            "steps": trained.history.steps,
            **{k: row[k] for k in ROW_SCORES},
            "seconds_per_epoch": row["train_seconds"] / max(row["epochs_run"], 1),
            "precision": row["precision"],
            "channels_last": trained.performance.get("perf_channels_last"),
        }

    def curves(trained: TrainedModel, result: dict[str, Any]) -> dict[str, Figure]:
        table = pd.DataFrame(result["history"])
        return {f"{variant.label}_curves": plots.variant_curves(table, f"{STUDY}: {variant.label}")}

    return train_variant_in_run(variant, job, config, describe, metrics=METRICS, figures=curves)


METRICS = ("test_accuracy", "test_loss", "train_seconds", "best_val_accuracy")
ROW_SCORES = (
    "best_val_accuracy",
    "final_val_accuracy",
    "test_accuracy",
    "test_loss",
    "train_seconds",
)
SEED_STATISTICS = ("test_accuracy", "best_val_accuracy", "train_seconds")


def summarise(*results: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One summary row per variant and seed, with the mean and standard deviation across
    seeds of each (family, depth) beside it, and one long per-epoch history table."""
    return study_summary(
        results,
        by=("group", "family", "depth"),
        statistics=SEED_STATISTICS,
        history_keys=("variant", "family", "depth", "seed"),
        history_leading=("train_loss", "val_loss", "val_accuracy", "lr", "epoch_time"),
    )


FIGURES = (
    "loss_curves",
    "accuracy_curves",
    "gradient_norms",
    "accuracy_vs_depth",
    "training_time",
)


def plot_study(summary: pd.DataFrame, history: pd.DataFrame) -> tuple[Any, ...]:
    """The study's figures, in the order of :data:`FIGURES` (the report reads them back
    from the catalog)."""
    figures = {
        "loss_curves": plots.curves_by_depth(history, "train_loss", "training loss", log=True),
        "accuracy_curves": plots.curves_by_depth(history, "val_accuracy", "validation accuracy"),
        "gradient_norms": plots.gradient_norms_by_layer(history),
        "accuracy_vs_depth": plots.accuracy_vs_depth(summary),
        "training_time": plots.training_time(summary),
    }
    log_figures(figures)
    return tuple(figures[name] for name in FIGURES)


def analysis_model(
    bundle: DatasetBundle,
    config: dict[str, Any],
    state: dict[str, torch.Tensor],
    *,
    variant: Variant,
) -> dict[str, Any]:
    """The trained variant whose penultimate features the dataset analysis maps."""
    model = variant_model(bundle, config, variant.group, variant["family"], variant["depth"])
    model.load_state_dict(state)
    return {"model": model, "input_size": image_size(config, variant.group), "label": variant.name}


@reporting.report_node
def write_report(run: reporting.RunInputs, history: pd.DataFrame, *figures: str) -> tuple[str, str]:
    """The run's report (HTML and Markdown), also logged to MLflow; ``figures`` are the
    saved study figures (base64 PNG) in the order of :data:`FIGURES`."""
    summary, bundle = run.summary, run.bundle
    skipped = [f"unreadable image skipped: {p}" for p in bundle.skipped]
    channels, height, width = bundle.train.image_shape
    return reporting.report_of(
        STUDY,
        run,
        dataset=f"{bundle.name} ({channels}x{height}x{width} images as stored)",
        tables={"summary": summary, "test accuracy across seeds": seed_statistics(summary)},
        figures=dict(zip(FIGURES, figures, strict=True)),
        findings=depth_findings(summary, history),
        problems=diverged(summary, "variant") + skipped + _unreached(run.raw_params),
        settings=reporting.group_settings(run.config["groups"]),
    )
