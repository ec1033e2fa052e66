"""Thin nodes of the depth study: they call library code and hand results to the catalog."""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from cnn_lab.data.sources import (
    DatasetBundle,
    load_digits_images,
    load_image_folder,
    load_torchvision_images,
)
from cnn_lab.data.splits import stratified_split
from cnn_lab.evaluation import plots
from cnn_lab.models import build_model, count_parameters
from cnn_lab.params import ParameterError, validate_parameters
from cnn_lab.pipelines.cnn_depth.schema import CnnDepthParams
from cnn_lab.tracking import child_run, log_figures, log_table
from cnn_lab.training.augment import crop_and_flip
from cnn_lab.training.callbacks import MlflowMetrics
from cnn_lab.training.performance import PerformanceOptions
from cnn_lab.training.recipe import Recipe, SplitData, train_model

STUDY = "cnn_depth"
logger = logging.getLogger(__name__)


def variant_name(family: str, depth: int) -> str:
    return f"{family}_d{depth}"


def validate_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Fail before any data is read if a parameter is wrong; pass on the full config,
    with each group's ``training`` block completed from the top-level one."""
    config = validate_parameters(CnnDepthParams, raw, STUDY).model_dump()
    cuda = config["device"] == "cuda" or (config["device"] == "auto" and torch.cuda.is_available())
    if config["performance"]["precision"] == "fp16" and not cuda:
        raise ParameterError(
            f"{STUDY}.performance.precision: 'fp16' needs device cuda (gradient scaling), "
            f"but {STUDY}.device is {config['device']!r}; use bf16 or fp32"
        )
    return config


def _load(data: dict[str, Any]) -> DatasetBundle:
    key = f"{STUDY}.data"
    if data["source"] == "digits":
        return load_digits_images()
    if data["source"] == "image_folder":
        folder = data["image_folder"]
        return load_image_folder(
            data["root"],
            size=folder["size"],
            on_unreadable=folder["on_unreadable"],
            key=key,
        )
    return load_torchvision_images(data["source"], data["root"], download=data["download"], key=key)


def image_size(config: dict[str, Any], group: str) -> int | None:
    """The group's ``image_size``, else ``data.image_size``; None keeps the stored size."""
    return config["groups"][group]["image_size"] or config["data"]["image_size"]


def input_shape(bundle: DatasetBundle, config: dict[str, Any], group: str) -> tuple[int, ...]:
    """The shape the group's models see: the stored images, resized if configured."""
    channels, height, width = bundle.train.image_shape
    size = image_size(config, group)
    return (channels, size, size) if size else (channels, height, width)


def enabled_variants(config: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [
        (group, family, depth)
        for group, spec in config["groups"].items()
        if spec["enabled"]
        for family in spec["families"]
        for depth in spec["depths"]
    ]


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
    import mlflow

    if mlflow.active_run() is None:
        return
    mlflow.log_metric("skipped_images", len(skipped))
    if skipped:
        mlflow.log_text("\n".join(skipped) + "\n", "data/skipped_images.txt")


def split_dataset(bundle: DatasetBundle, config: dict[str, Any]) -> dict[str, Any]:
    data = config["data"]
    return stratified_split(
        bundle.train.labels,
        val_ratio=data["val_ratio"],
        seed=config["seed"],
        test_ratio=None if bundle.test is not None else data["test_ratio"],
    )


def _recipe(config: dict[str, Any], group: str) -> Recipe:
    training = dict(config["groups"][group]["training"])
    training["milestones"] = tuple(training["milestones"])
    return Recipe(
        **training,
        seed=config["seed"],
        device=config["device"],
        probe_batch_size=config["probe_batch_size"],
        performance=PerformanceOptions(**config["performance"]),
    )


def train_variant(
    bundle: DatasetBundle,
    split: dict[str, Any],
    config: dict[str, Any],
    *,
    group: str,
    family: str,
    depth: int,
) -> tuple[dict[str, Any], nn.Module]:
    """Train one (family, depth) variant in its own nested MLflow run."""
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    name = variant_name(family, depth)
    data = SplitData.from_bundle(bundle, split)
    options = config["groups"][group]["model"]
    training = config["groups"][group]["training"]
    recipe = _recipe(config, group)
    augment_params = config["data"]["augment"]
    augment = (
        crop_and_flip(augment_params["crop_padding"], augment_params["flip"])
        if augment_params["crop_padding"] or augment_params["flip"]
        else None
    )

    def build() -> nn.Module:
        return build_model(
            family,
            in_shape=input_shape(bundle, config, group),
            num_classes=bundle.train.num_classes,
            depth=depth,
            **options,
        )

    parameters = count_parameters(build())
    run_params = {
        "study": STUDY,
        "group": group,
        "family": family,
        "depth": depth,
        "dataset": bundle.name,
        "parameters": parameters,
        "image_size": "x".join(map(str, input_shape(bundle, config, group)[1:])),
        "skipped_images": len(bundle.skipped),
        **{f"augment_{k}": v for k, v in augment_params.items()},
        **options,
        **training,
        "seed": config["seed"],
    }
    tags = {"study": STUDY, "variant": name, "family": family}
    with child_run(name, run_params, tags) as run_id:
        trained = train_model(
            build,
            data,
            recipe,
            label=f"{STUDY}.{group}.{name}",
            augment=augment,
            input_size=image_size(config, group),
            extra_callbacks=[MlflowMetrics()],
        )
        history = trained.history
        table = pd.DataFrame(history.epochs).assign(epoch=range(1, len(history.epochs) + 1))
        val_acc = history.column("val_accuracy") or [math.nan]
        result = {
            "variant": name,
            "group": group,
            "family": family,
            "depth": depth,
            "width": options.get("width"),
            "parameters": parameters,
            "status": "diverged" if history.diverged else "ok",
            "diverged_epoch": history.diverged_epoch,
            "epochs_run": len(history.epochs),
            "steps": history.steps,
            "best_val_accuracy": max(val_acc),
            "final_val_accuracy": val_acc[-1],
            "test_accuracy": trained.test["accuracy"],
            "test_loss": trained.test["loss"],
            "train_seconds": history.train_seconds,
            "seconds_per_epoch": history.train_seconds / max(len(history.epochs), 1),
            "precision": trained.performance["perf_precision"],
            "channels_last": trained.performance["perf_channels_last"],
            "mlflow_run_id": run_id,
            "history": table.to_dict(orient="records"),
        }
        if run_id is not None:
            import mlflow

            mlflow.log_metrics(
                {
                    "test_accuracy": result["test_accuracy"],
                    "test_loss": result["test_loss"],
                    "train_seconds": result["train_seconds"],
                    "best_val_accuracy": result["best_val_accuracy"],
                }
            )
            mlflow.log_params(trained.performance)
            mlflow.set_tag("status", result["status"])
            log_figures({f"{name}_curves": plots.variant_curves(table, f"{STUDY}: {name}")})
    logger.info(
        "[%s.%s.%s] test accuracy %.4f (%s, %.1f s)",
        STUDY,
        group,
        name,
        result["test_accuracy"],
        result["status"],
        result["train_seconds"],
    )
    return result, trained.model.cpu()


def summarise(*results: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One summary row per variant and one long per-epoch history table."""
    summary = pd.DataFrame([{k: v for k, v in r.items() if k != "history"} for r in results])
    histories = [
        pd.DataFrame(r["history"]).assign(
            variant=r["variant"], family=r["family"], depth=r["depth"]
        )
        for r in results
    ]
    history = pd.concat(histories, ignore_index=True)
    leading = [
        "variant",
        "family",
        "depth",
        "epoch",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "lr",
        "epoch_time",
    ]
    history = history[
        [c for c in leading if c in history] + sorted(c for c in history if c not in leading)
    ]
    log_table(summary, "tables/summary.csv")
    log_table(history, "tables/history.csv")
    return summary, history


def plot_study(summary: pd.DataFrame, history: pd.DataFrame) -> tuple[Figure, ...]:
    figures = {
        "loss_curves": plots.curves_by_depth(history, "train_loss", "training loss", log=True),
        "accuracy_curves": plots.curves_by_depth(history, "val_accuracy", "validation accuracy"),
        "gradient_norms": plots.gradient_norms_by_layer(history),
        "accuracy_vs_depth": plots.accuracy_vs_depth(summary),
        "training_time": plots.training_time(summary),
    }
    log_figures(figures)
    return tuple(figures.values())
