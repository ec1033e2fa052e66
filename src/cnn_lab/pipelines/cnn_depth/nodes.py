"""Thin nodes of the depth study: they call library code and hand results to the catalog."""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd
import torch
from torch import nn

from cnn_lab.data.sources import (
    DatasetBundle,
    load_digits_images,
    load_image_folder,
    load_torchvision_images,
)
from cnn_lab.evaluation import plots
from cnn_lab.evaluation.depth_findings import depth_findings, depth_problems, seed_statistics
from cnn_lab.models import build_model, count_parameters
from cnn_lab.pipelines.cnn_depth.schema import CnnDepthParams
from cnn_lab.runtime.tracking import log_figures, log_table
from cnn_lab.study import reporting
from cnn_lab.study.params import ParameterError, validate_parameters
from cnn_lab.study.shared_nodes import training_seeds
from cnn_lab.study.training_params import check_precision
from cnn_lab.study.variant_run import checkpoint_store, log_status, variant_run
from cnn_lab.training.augment import crop_and_flip
from cnn_lab.training.device import resolve_device
from cnn_lab.training.performance import PerformanceOptions
from cnn_lab.training.recipe import Recipe, SplitData, train_model
from cnn_lab.training.threads import use_threads

STUDY = "cnn_depth"
logger = logging.getLogger(__name__)


def variant_name(family: str, depth: int, seed: int | None = None) -> str:
    """``mlp_d8``; ``mlp_d8_s1`` when the study repeats variants over several seeds."""
    return f"{family}_d{depth}" if seed is None else f"{family}_d{depth}_s{seed}"


def validate_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Fail before any data is read if a parameter is wrong; pass on the full config,
    with each group's ``training`` block completed from the top-level one. A
    command-line override of ``training`` that some group overrides again is logged."""
    config = validate_parameters(CnnDepthParams, raw, STUDY).model_dump()
    check_precision(config, STUDY)
    from cnn_lab.runtime.hooks import runtime_parameters

    for warning in unreached_overrides(raw, runtime_parameters().get(STUDY) or {}):
        logger.warning("[%s] %s", STUDY, warning)
    return config


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
    if data["source"] == "digits":
        return load_digits_images()
    if data["source"] == "image_folder":
        folder = data["image_folder"]
        return load_image_folder(
            data["root"],
            size=folder["size"],
            on_unreadable=folder["on_unreadable"],
            key=key,
            channels=folder["channels"],
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


def group_recipe(config: dict[str, Any], group: str, seed: int) -> Recipe:
    """The training recipe of one variant group, as the study runs it."""
    training = dict(config["groups"][group]["training"])
    training["milestones"] = tuple(training["milestones"])
    return Recipe(
        **training,
        seed=seed,
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
    seed: int | None = None,
) -> tuple[dict[str, Any], nn.Module]:
    """Train one (family, depth[, seed]) variant in its own nested MLflow run; ``seed``
    None is the single-seed study, trained with its one seed."""
    use_threads(config["threads"])  # by load; train_model refines it for the model
    name = variant_name(family, depth, seed)
    seed = training_seeds(config)[0] if seed is None else seed
    data = SplitData.from_bundle(bundle, split)
    options = config["groups"][group]["model"]
    training = config["groups"][group]["training"]
    recipe = group_recipe(config, group, seed)
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
        "seed": seed,
    }
    tags = {"study": STUDY, "variant": variant_name(family, depth), "family": family}
    store = checkpoint_store(STUDY, name, config, run_params, recipe, split)
    with variant_run(store, name, run_params, tags) as run:
        trained = train_model(
            build,
            data,
            recipe,
            label=f"{STUDY}.{group}.{name}",
            augment=augment,
            input_size=image_size(config, group),
            extra_callbacks=run.callbacks,
            checkpoint=store,
            threads=config["threads"],
        )
        result = _result(trained, name, run_params, run.run_id)
        if run.reused:
            logger.info(
                "[%s.%s.%s] finished earlier: reused %s", STUDY, group, name, store.latest.name
            )
            return result, trained.model
        if run.logging:
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
            log_status(result)
            table = pd.DataFrame(result["history"])
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


SEED_STATISTICS = ("test_accuracy", "best_val_accuracy", "train_seconds")


def _result(
    trained: Any, name: str, run_params: dict[str, Any], run_id: str | None
) -> dict[str, Any]:
    """One summary row (and the per-epoch history) of a trained or reused variant."""
    history = trained.history
    table = pd.DataFrame(history.epochs).assign(epoch=range(1, len(history.epochs) + 1))
    val_acc = history.column("val_accuracy") or [math.nan]
    return {
        "variant": name,
        "group": run_params["group"],
        "family": run_params["family"],
        "depth": run_params["depth"],
        "seed": run_params["seed"],
        "width": run_params.get("width"),
        "parameters": run_params["parameters"],
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
        "precision": trained.performance.get("perf_precision"),
        "channels_last": trained.performance.get("perf_channels_last"),
        "mlflow_run_id": run_id,
        "history": table.to_dict(orient="records"),
    }


def summarise(*results: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One summary row per variant and seed, with the mean and standard deviation across
    seeds of each (family, depth) beside it, and one long per-epoch history table."""
    summary = pd.DataFrame([{k: v for k, v in r.items() if k != "history"} for r in results])
    by_variant = summary.groupby(["group", "family", "depth"], sort=False)
    for metric in SEED_STATISTICS:
        summary[f"{metric}_mean"] = by_variant[metric].transform("mean")
        summary[f"{metric}_std"] = by_variant[metric].transform("std")
    summary["seeds"] = by_variant["seed"].transform("count")
    histories = [
        pd.DataFrame(r["history"]).assign(
            variant=r["variant"], family=r["family"], depth=r["depth"], seed=r["seed"]
        )
        for r in results
    ]
    history = pd.concat(histories, ignore_index=True)
    leading = [
        "variant",
        "family",
        "depth",
        "seed",
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
    group: str,
    family: str,
    depth: int,
) -> dict[str, Any]:
    """The trained variant whose penultimate features the dataset analysis maps."""
    model = build_model(
        family,
        in_shape=input_shape(bundle, config, group),
        num_classes=bundle.train.num_classes,
        depth=depth,
        **config["groups"][group]["model"],
    )
    model.load_state_dict(state)
    return {"model": model, "input_size": image_size(config, group), "label": f"{family}_d{depth}"}


def write_report(
    raw_params: dict[str, Any],
    config: dict[str, Any],
    bundle: DatasetBundle,
    split: dict[str, Any],
    summary: pd.DataFrame,
    history: pd.DataFrame,
    analysis: dict[str, Any],
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
        device=str(resolve_device(config["device"])),
        precision=reporting.precision_that_ran(summary),
        tables={"summary": summary, "test accuracy across seeds": seed_statistics(summary)},
        figures=dict(zip(FIGURES, figures, strict=True)),
        findings=depth_findings(summary, history),
        problems=problems,
        sections=(analysis,),
        settings=group_settings(config),
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
