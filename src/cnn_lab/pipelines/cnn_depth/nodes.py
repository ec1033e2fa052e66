"""Thin nodes of the depth study: they call library code and hand results to the catalog."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from cnn_lab.data.sources import (
    DatasetBundle,
    load_image_folder,
    load_named_images,
)
from cnn_lab.evaluation import plots
from cnn_lab.models import build_model, count_parameters
from cnn_lab.pipelines.cnn_depth.findings import (
    depth_findings,
    depth_problems,
    seed_statistics,
)
from cnn_lab.runtime.tracking import log_figures, log_metrics, log_text
from cnn_lab.study import reporting
from cnn_lab.study.params import ParameterError
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
    from cnn_lab.runtime.hooks import runtime_parameters

    for warning in unreached_overrides(raw, runtime_parameters().get(STUDY) or {}):
        logger.warning("[%s] %s", STUDY, warning)


def unreached_overrides(raw: dict[str, Any], override: dict[str, Any]) -> list[str]:
    """One line per ``--params cnn_depth.training.<key>`` that a group does not see
    because its own ``groups.<name>.training.<key>`` wins (e.g. ``epochs=2`` retrains
    the MLPs in 2 epochs while the CNNs keep their 8)."""
    top = override.get("training") or {}
    group_overrides = override.get("groups") or {}
    lines = []
    for key, value in top.items():
        kept = {
            name: (spec.get("training") or {})[key]
            for name, spec in (raw.get("groups") or {}).items()
            if isinstance(spec, dict)
            and key in (spec.get("training") or {})
            and spec.get("enabled", True)
            and (spec.get("training") or {})[key] != value
            and key not in ((group_overrides.get(name) or {}).get("training") or {})
        }
        if kept:
            groups = ", ".join(f"{name} ({key}={v})" for name, v in kept.items())
            also = ", ".join(f"{STUDY}.groups.{name}.training.{key}" for name in kept)
            lines.append(
                f"--params {STUDY}.training.{key}={value} does not reach group(s) {groups}: "
                f"they set training.{key} themselves; override {also} as well to change them"
            )
    return lines


def _load(data: dict[str, Any]) -> DatasetBundle:
    key = f"{STUDY}.data"
    if data["source"] == "image_folder":
        folder = data["image_folder"]
        return load_image_folder(
            data["root"],
            size=folder["size"],
            on_unreadable=folder["on_unreadable"],
            key=key,
            channels=folder["channels"],
            options_key=f"{key}.image_folder",
        )
    return load_named_images(data["source"], data["root"], download=data["download"], key=key)


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


def check_variants(bundle: DatasetBundle, config: dict[str, Any]) -> None:
    """Build every variant on the meta device (no memory, no compute) so a depth or an
    input size a family cannot take fails now, naming the parameter, not mid-study."""
    problems = []
    for group, family, depth in enabled_variants(config):
        shape = input_shape(bundle, config, group)
        try:
            with torch.device("meta"):
                build_model(
                    family,
                    in_shape=shape,
                    num_classes=bundle.train.num_classes,
                    depth=depth,
                    **config["groups"][group]["model"],
                )
        except ValueError as err:
            problems.append(
                f"{STUDY}.groups.{group} ({family}, depths entry {depth}, "
                f"model options {config['groups'][group]['model']}, "
                f"inputs {'x'.join(map(str, shape))}): {err}"
            )
    if problems:
        header = f"{len(problems)} variant(s) cannot be built (conf/<env>/parameters_*.yml):"
        raise ParameterError("\n  ".join([header, *problems]))


def prepare_dataset(config: dict[str, Any]) -> DatasetBundle:
    """Load the source, record unreadable images that were skipped, and check that every
    variant can be built for its input shape before anything trains."""
    bundle = _load(config["data"])
    if config["data"]["source"] == "image_folder":
        logger.info(
            "[%s] image folder %s: %d images, %d classes, %d unreadable skipped",
            STUDY,
            config["data"]["root"],
            len(bundle.train),
            bundle.train.num_classes,
            len(bundle.skipped),
        )
        _log_skipped(bundle.skipped)
    check_variants(bundle, config)
    return bundle


def _log_skipped(skipped: list[str]) -> None:
    log_metrics({"skipped_images": len(skipped)})
    if skipped:
        log_text("\n".join(skipped) + "\n", "data/skipped_images.txt")


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
    options = config["groups"][group]["model"]
    augment = config["data"]["augment"]
    shape = input_shape(bundle, config, group)

    def build() -> nn.Module:
        return build_model(
            family, in_shape=shape, num_classes=bundle.train.num_classes, depth=depth, **options
        )

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

    return train_variant_in_run(
        variant,
        job,
        config,
        describe,
        metrics=("test_accuracy", "test_loss", "train_seconds", "best_val_accuracy"),
        figures=curves,
    )


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
    group = variant.group
    model = build_model(
        variant["family"],
        in_shape=input_shape(bundle, config, group),
        num_classes=bundle.train.num_classes,
        depth=variant["depth"],
        **config["groups"][group]["model"],
    )
    model.load_state_dict(state)
    return {"model": model, "input_size": image_size(config, group), "label": variant.name}


def write_report(
    raw_params: dict[str, Any],
    config: dict[str, Any],
    bundle: DatasetBundle,
    split: dict[str, Any],
    summary: pd.DataFrame,
    history: pd.DataFrame,
    analysis: dict[str, Any],
    claims: pd.DataFrame,
    confusion: str,
    *figures: str,
) -> tuple[str, str]:
    """The run's report (HTML and Markdown), also logged to MLflow; ``figures`` are the
    saved study figures (base64 PNG) in the order of :data:`FIGURES`."""
    problems = depth_problems(summary) + [f"unreadable image skipped: {p}" for p in bundle.skipped]
    from cnn_lab.runtime.hooks import runtime_parameters

    problems += unreached_overrides(raw_params, runtime_parameters().get(STUDY) or {})
    channels, height, width = bundle.train.image_shape
    return reporting.write_report(
        STUDY,
        raw_params,
        dataset=f"{bundle.name} ({channels}x{height}x{width} images as stored)",
        split_sizes=reporting.split_sizes(bundle, split),
        **reporting.what_ran(config, summary),
        tables={
            "summary": summary,
            "test accuracy across seeds": seed_statistics(summary),
        },
        figures=dict(zip(FIGURES, figures, strict=True)),
        findings=depth_findings(summary, history),
        problems=problems,
        sections=(analysis,),
        settings=group_settings(config),
        claims=claims,
        confusion=confusion,
    )


def group_settings(config: dict[str, Any]) -> dict[str, str]:
    """Each enabled group's effective training settings (the top-level block with the
    group's own keys on top), so a report never mixes 2- and 8-epoch groups unsaid."""
    settings = {}
    for name, spec in config["groups"].items():
        if not spec["enabled"]:
            continue
        training = {k: v for k, v in spec["training"].items() if v not in (None, [], ())}
        settings[f"training of group {name}"] = ", ".join(f"{k} {v}" for k, v in training.items())
    return settings
