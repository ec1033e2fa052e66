"""Thin nodes of the artworks study: they call library code and hand results to the catalog."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from cnn_lab.data.artworks import index_artworks
from cnn_lab.data.image_cache import BatchedImages, DecodedImages, channel_statistics, decode_all
from cnn_lab.data.splits import stratified_split
from cnn_lab.evaluation import class_plots
from cnn_lab.evaluation.dataset_analysis import ImageSplits, store_splits
from cnn_lab.evaluation.findings import across_seeds, statistic_columns, with_seed_statistics
from cnn_lab.evaluation.metrics import classification_metrics, confusion, per_class_report
from cnn_lab.evaluation.study_findings import (
    ARTWORKS_STATISTICS,
    artworks_findings,
    artworks_problems,
)
from cnn_lab.models import count_parameters
from cnn_lab.pipelines.artworks.schema import ArtworksParams
from cnn_lab.pipelines.artworks.variants import VARIANTS, build_variant
from cnn_lab.runtime.tracking import log_figures, log_table
from cnn_lab.study import reporting
from cnn_lab.study.params import validate_parameters
from cnn_lab.study.training_params import check_precision
from cnn_lab.study.variant_run import checkpoint_store, log_status, variant_run
from cnn_lab.training.augment import BatchAugment
from cnn_lab.training.batching import Normalisation
from cnn_lab.training.callbacks import ProgressLog
from cnn_lab.training.checkpoint import EpochCheckpoint, record_finished, restore_history
from cnn_lab.training.device import resolve_device, seed_everything
from cnn_lab.training.engine import History, fit, predict
from cnn_lab.training.loader import LoaderBatches
from cnn_lab.training.loss import balanced_class_weights
from cnn_lab.training.optim import build_optimizer, build_scheduler
from cnn_lab.training.performance import PerformanceOptions, set_up_model
from cnn_lab.training.threads import use_threads

STUDY = "artworks"
SPLITS = ("train", "val", "test")
HEADLINE = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1")
logger = logging.getLogger(__name__)


def _mlflow_active() -> bool:
    import mlflow

    return mlflow.active_run() is not None


def validate_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Fail before any data is read if a parameter is wrong; pass on the full config."""
    config = validate_parameters(ArtworksParams, raw, STUDY).model_dump()
    check_precision(config, STUDY)
    return config


def index_images(config: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Table of every image of every known artist; stops at once when the data is absent."""
    data = config["data"]
    index = index_artworks(
        data["root"], csv=data["csv"], images=data["images"], exclude=data["exclude_artists"]
    )
    report = index.report()
    report["class_names"] = index.class_names
    logger.info("artworks: indexed %d images of %d artists", report["images"], report["artists"])
    if _mlflow_active():
        import mlflow

        mlflow.log_metrics(
            {
                "images_indexed": report["images"],
                "artists": report["artists"],
                "artists_without_images": len(report["artists_without_images"]),
                "folders_without_artist": len(report["folders_without_artist"]),
                "duplicate_files": len(report["duplicate_files"]),
            }
        )
        mlflow.log_dict(report, "data/index_report.json")
    return index.table, report


def decode_images(index: pd.DataFrame, config: dict[str, Any]) -> tuple[pd.DataFrame, dict]:
    """Decode (and cache) every image once; unreadable files are listed and skipped."""
    data = config["data"]
    root = Path(data["root"])
    store, kept, unreadable = decode_all(
        [root / p for p in index["path"]],
        data["image_size"],
        cache_dir=data["cache_dir"] if data["cache"] else None,
        workers=data["workers"],
    )
    images = index.iloc[kept].reset_index(drop=True)
    images["cache_row"] = store.cache_rows if store.cache_rows is not None else -1
    if unreadable:
        logger.warning(
            "artworks: %d unreadable image(s) skipped: %s",
            len(unreadable),
            "; ".join(f"{p} ({e})" for p, e in unreadable.items()),
        )
    report = {
        "image_size": data["image_size"],
        "cache_file": None if store.cache_file is None else str(store.cache_file),
        "readable": len(images),
        "unreadable_count": len(unreadable),
        "unreadable": unreadable,
    }
    if _mlflow_active():
        import mlflow

        mlflow.log_metric("unreadable_images", len(unreadable))
        mlflow.log_dict(report, "data/decode_report.json")
    return images, report


def open_store(images: pd.DataFrame, decoded: dict[str, Any], config: dict) -> DecodedImages:
    root = Path(config["data"]["root"])
    cache = decoded["cache_file"]
    return DecodedImages(
        [root / p for p in images["path"]],
        decoded["image_size"],
        None if cache is None else Path(cache),
        None if cache is None else images["cache_row"].astype(int).tolist(),
    )


def check_class_sizes(images: pd.DataFrame, class_names: list[str], minimum: int) -> None:
    """Every indexed artist needs ``minimum`` readable images (an artist whose files were
    all unreadable counts as 0, not as absent)."""
    counts = images["artist"].value_counts().reindex(class_names, fill_value=0)
    small = counts[counts < minimum]
    if len(small):
        listed = ", ".join(f"{artist!r} has {n}" for artist, n in small.sort_values().items())
        raise ValueError(
            f"artworks: too few readable images for a stratified train/val/test split "
            f"(artworks.data.min_images_per_class = {minimum}): {listed}. Add images, or "
            f"leave the artist out with artworks.data.exclude_artists."
        )


def split_images(
    images: pd.DataFrame, index_report: dict[str, Any], config: dict[str, Any]
) -> dict[str, Any]:
    """Stratified train/val/test indices into the readable-image table."""
    data = config["data"]
    check_class_sizes(images, index_report["class_names"], data["min_images_per_class"])
    labels = images["label"].to_numpy()
    try:
        split = stratified_split(
            labels,
            val_ratio=data["val_ratio"] / (1.0 - data["test_ratio"]),  # a share of the rest
            test_ratio=data["test_ratio"],
            seed=config["seed"],
        )
    except ValueError as err:  # scikit-learn: a split smaller than the number of classes
        raise ValueError(
            f"artworks: cannot split {len(labels)} images of {len(set(labels))} artists "
            f"with val_ratio {data['val_ratio']} and test_ratio {data['test_ratio']}: {err}"
        ) from err
    split["val_ratio"] = data["val_ratio"]
    return split


def normalisation_stats(
    images: pd.DataFrame, decoded: dict[str, Any], split: dict[str, Any], config: dict
) -> dict[str, Any]:
    """Per-channel mean and std of the training split (never of val/test)."""
    store = open_store(images, decoded, config)
    mean, std = channel_statistics(store, split["train"])
    logger.info("artworks: training-split mean %s, std %s", mean, std)
    return {"mean": list(mean), "std": list(std), "images": len(split["train"])}


def class_counts_figure(images: pd.DataFrame, split: dict[str, Any]) -> Figure:
    part = pd.Series("", index=images.index)
    for name in SPLITS:
        part.iloc[split[name]] = name
    counts = pd.crosstab(images["artist"], part)[list(SPLITS)]
    figure = class_plots.class_counts(counts)
    log_figures({"class_counts": figure})
    return figure


def _loss(config: dict[str, Any], train_labels: np.ndarray, k: int, device) -> nn.Module:
    if not config["training"]["class_weights"]:
        return nn.CrossEntropyLoss()
    weights = balanced_class_weights(train_labels, k)
    return nn.CrossEntropyLoss(weight=weights.to(device))


def _batches(
    store, images, split, norm, config, device, part: str, memory_format=None
) -> LoaderBatches:
    rows = split[part]
    training = part == "train"
    aug = config["augmentation"]
    augment = BatchAugment(
        rotate90=aug["rotate90"],
        hflip=aug["hflip"],
        vflip=aug["vflip"],
        random_resized_crop=aug["random_resized_crop"],
        crop_scale=tuple(aug["crop_scale"]),
    )
    return LoaderBatches(
        BatchedImages(store, rows, images["label"].to_numpy()[rows]),
        batch_size=config["training"]["batch_size" if training else "eval_batch_size"],
        device=device,
        normalisation=norm,
        shuffle=training,
        seed=config["seed"],
        augment=augment if training and augment.active else None,
        workers=config["data"]["workers"],
        memory_format=memory_format,
    )


def train_variant(
    images: pd.DataFrame,
    decoded: dict[str, Any],
    split: dict[str, Any],
    normalisation: dict[str, Any],
    index_report: dict[str, Any],
    config: dict[str, Any],
    *,
    variant: str,
) -> tuple[dict[str, Any], nn.Module, Figure, Figure]:
    """Train one variant in its own nested MLflow run and score it on the test split."""
    use_threads(config["threads"])  # by load; refined below for the model
    device = resolve_device(config["device"])
    seed_everything(config["seed"])
    class_names = index_report["class_names"]
    k = len(class_names)
    settings = config["variants"][variant]
    model = build_variant(
        variant, num_classes=k, model=config["model"], weights=settings["weights"]
    ).to(device)
    size = int(decoded["image_size"])
    threads = use_threads(
        config["threads"],
        model,
        device=device,
        in_shape=(3, size, size),
        batch_size=config["training"]["batch_size"],
    )
    performance, model, trained_module = set_up_model(
        PerformanceOptions(**config["performance"]), model, device
    )
    store = open_store(images, decoded, config)
    norm = Normalisation(tuple(normalisation["mean"]), tuple(normalisation["std"]))
    train, val, test = (
        _batches(store, images, split, norm, config, device, part, performance.memory_format)
        for part in SPLITS
    )
    training = config["training"]
    optimizer = build_optimizer(
        training["optimizer"],
        [p for p in model.parameters() if p.requires_grad],
        lr=settings["lr"],
        weight_decay=training["weight_decay"],
    )
    scheduler = build_scheduler(
        training["scheduler"],
        optimizer,
        epochs=training["epochs"],
        step_size=training["step_size"],
        gamma=training["gamma"],
    )
    labels = images["label"].to_numpy()
    loss_fn = _loss(config, labels[split["train"]], k, device)
    kind = VARIANTS[variant]
    info = {
        "variant": variant,
        "description": kind.description,
        "arch": config["model"]["arch"],
        "family": kind.family,
        "weights": settings["weights"] or "none",
        "freeze": kind.freeze,
        "lr": settings["lr"],
        "image_size": decoded["image_size"],
        "parameters": count_parameters(model),
        "trainable_parameters": count_parameters(model, trainable_only=True),
    }
    run_params = {
        **info,
        **{f"training.{k_}": v for k_, v in training.items()},
        **{f"augmentation.{k_}": v for k_, v in config["augmentation"].items()},
        "seed": config["seed"],
        "device": str(device),
    }
    checkpoints = checkpoint_store(
        STUDY, variant, config, run_params, config["performance"], split, index_report
    )
    with variant_run(checkpoints, variant, run_params, {"study": STUDY, "variant": variant}) as run:
        done = checkpoints.load()
        if done is not None and done.finished:  # its test scores are recomputed below
            model.load_state_dict(done.model)
            history = History()
            restore_history(done, history)
        else:
            history = fit(
                trained_module,
                train,
                optimizer=optimizer,
                epochs=training["epochs"],
                val=val,
                scheduler=scheduler,
                loss_fn=loss_fn,
                callbacks=[ProgressLog(f"{STUDY}.{variant}"), *run.callbacks],
                checkpoint=EpochCheckpoint(checkpoints, {"batches": train.generator}),
                performance=performance,
            )
            record_finished(checkpoints, model, history, {})
        started = time.perf_counter()
        logits, targets = predict(model, test)
        scores = torch.softmax(logits, dim=1).numpy()
        y_true, y_pred = targets.numpy(), scores.argmax(axis=1)
        top_k = config["report"]["top_k"]
        metrics = classification_metrics(y_true, y_pred, num_classes=k, scores=scores, k=top_k)
        report = per_class_report(y_true, y_pred, class_names)
        matrix = confusion(y_true, y_pred, k)
        confusion_fig = class_plots.confusion_matrix(
            matrix, class_names, f"{STUDY}: {variant} (test, rows normalised)"
        )
        grid = _misclassified_grid(
            store, split["test"], y_true, y_pred, class_names, config, variant
        )
        val_acc = history.column("val_accuracy") or [math.nan]
        result = {
            **info,
            "seed": config["seed"],
            "status": "diverged" if history.diverged else "ok",
            "diverged_epoch": history.diverged_epoch,
            "precision": performance.precision,
            "epochs_run": len(history.epochs),
            "best_val_accuracy": max(val_acc),
            "final_val_accuracy": val_acc[-1],
            **{f"test_{name}": value for name, value in metrics.items()},
            "train_seconds": history.train_seconds,
            "test_seconds": time.perf_counter() - started,
            "mlflow_run_id": run.run_id,
            "class_names": class_names,
            "test_rows": list(split["test"]),
            "y_true": y_true.tolist(),
            "y_pred": y_pred.tolist(),
            "per_class": report.to_dict(orient="records"),
            "history": history.epochs,
        }
        if run.logging:
            import mlflow

            mlflow.log_metrics({f"test_{n}": v for n, v in metrics.items()})
            mlflow.log_params({**performance.as_params(), **threads.as_params()})
            log_status(result)
            log_table(report, "tables/per_class_report.csv")
            # per-epoch curves are MLflow metrics (logged with step = epoch), charted there
            log_figures({"confusion_matrix": confusion_fig, "misclassified": grid})
    logger.info(
        "[%s.%s] test accuracy %.4f, balanced %.4f, macro F1 %.4f (%.1f s)",
        STUDY,
        variant,
        metrics["accuracy"],
        metrics["balanced_accuracy"],
        metrics["macro_f1"],
        history.train_seconds,
    )
    return result, model.cpu(), confusion_fig, grid


def _misclassified_grid(store, test_rows, y_true, y_pred, class_names, config, variant) -> Figure:
    wrong = np.flatnonzero(y_true != y_pred)
    rng = np.random.default_rng(config["seed"])
    chosen = np.sort(rng.permutation(wrong)[: config["report"]["misclassified"]])
    rows = np.asarray(test_rows, dtype=np.int64)[chosen]
    captions = [
        f"true: {class_names[y_true[i]]}\npredicted: {class_names[y_pred[i]]}" for i in chosen
    ]
    return class_plots.image_grid(
        store.read(rows),
        captions,
        f"{STUDY}: {variant}, {len(chosen)} of {len(wrong)} misclassified test paintings",
    )


def summarise(*results: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, Figure]:
    """One row per variant and training seed, with each variant's mean and std across
    seeds beside it; the per-class reports side by side; and a comparison chart (means,
    error bars one std)."""
    bulky = ("class_names", "test_rows", "y_true", "y_pred", "per_class", "history")
    summary = pd.DataFrame([{k: v for k, v in r.items() if k not in bulky} for r in results])
    summary = with_seed_statistics(summary, ["variant"], ARTWORKS_STATISTICS)
    per_class = pd.concat(
        [
            pd.DataFrame(r["per_class"]).assign(variant=r["variant"], seed=r["seed"])
            for r in results
        ],
        ignore_index=True,
    )
    leading = ["variant", "seed"]
    per_class = per_class[[*leading, *[c for c in per_class.columns if c not in leading]]]
    metrics = [f"test_{m}" for m in HEADLINE] + [
        c for c in summary.columns if c.startswith("test_top") and not c.endswith(("_mean", "_std"))
    ]
    figure = class_plots.compare_variants(summary, metrics)
    log_table(summary, "tables/summary.csv")
    log_table(per_class, "tables/per_class_report.csv")
    log_figures({"variant_comparison": figure})
    return summary, per_class, figure


# --- what people read: the dataset analysis and the report --------------------------------


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
        open_store(images, decoded, config),
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
    pairs = [
        (result, state)
        for result, state in zip(variants[::2], variants[1::2], strict=True)
        if math.isfinite(result["best_val_accuracy"])
    ]
    if not pairs:
        return {"model": None}
    result, state = max(pairs, key=lambda pair: pair[0]["best_val_accuracy"])
    model = build_variant(
        result["variant"],
        num_classes=len(index_report["class_names"]),
        model=config["model"],
        weights=None,  # the saved state replaces them: nothing to download
    )
    model.load_state_dict(state)
    return {
        "model": model,
        "input_size": None,
        "normalisation": normalisation,
        "label": result["variant"],
    }


VARIANT_FIGURES = ("confusion_matrix", "misclassified")
COUNT_COLUMNS = ("seed", "image_size", "parameters", "trainable_parameters", "epochs_run")


def per_class_f1(per_class: pd.DataFrame) -> pd.DataFrame:
    """F1 of every artist (and the averages) by variant, side by side (the mean over
    training seeds when they repeat), with the support."""
    order = list(dict.fromkeys(per_class["class"]))
    f1 = per_class.pivot_table(index="class", columns="variant", values="f1-score", aggfunc="mean")
    variants = list(dict.fromkeys(per_class["variant"]))
    support = per_class.drop_duplicates("class").set_index("class")["support"]
    table = f1.reindex(index=order, columns=variants).assign(support=support)
    return reporting.with_integers(table.reset_index(), ("support",))


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
    class_counts: str,
    variant_comparison: str,
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
    return reporting.write_report(
        STUDY,
        raw_params,
        dataset=f"Best Artworks of All Time ({k} artists, {len(images)} readable images, "
        f"{decoded['image_size']} px)",
        split_sizes=reporting.split_sizes(None, split),
        device=str(resolve_device(config["device"])),
        precision=reporting.precision_that_ran(summary),
        tables={
            "summary (test split)": reporting.with_integers(
                summary.drop(columns=statistic_columns(ARTWORKS_STATISTICS)), COUNT_COLUMNS
            ),
            **({"mean and std across seeds (test split)": across} if repeated else {}),
            f"F1 per artist by variant (test split{mean})": per_class_f1(per_class),
        },
        figures=figures,
        findings=artworks_findings(summary, k),
        problems=artworks_problems(summary, decoded, index_report),
        sections=(analysis,),
    )
