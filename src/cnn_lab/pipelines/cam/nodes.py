"""Thin nodes of the CAM study: they call library code and hand results to the catalog."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from cnn_lab.data.random_crops import RandomCrops
from cnn_lab.data.sources import DatasetBundle, LabelledImages
from cnn_lab.evaluation import cam, cam_plots
from cnn_lab.evaluation.findings import diverged
from cnn_lab.models import Weights, build_model, count_parameters
from cnn_lab.pipelines.cam.findings import cam_findings, cam_seed_table
from cnn_lab.pipelines.cam.schema import PRETRAIN, CamParams
from cnn_lab.runtime.tracking import log_figures, log_table
from cnn_lab.study import reporting
from cnn_lab.study.params import validate_parameters
from cnn_lab.study.shared_nodes import training_seeds
from cnn_lab.study.training_params import check_precision
from cnn_lab.study.variant_run import checkpoint_store, log_status, variant_run
from cnn_lab.training.batching import DeviceBatches, Normalisation
from cnn_lab.training.device import resolve_device
from cnn_lab.training.performance import PerformanceOptions
from cnn_lab.training.recipe import Recipe, SplitData, train_model
from cnn_lab.training.threads import use_threads

STUDY = "cam"
BOX_COLUMNS = ["split", "index", "x0", "y0", "x1", "y1"]
logger = logging.getLogger(__name__)


def _check_weights(name: str, model: dict[str, Any]) -> bool:
    """True when pretrained weights are missing and the model may train from scratch;
    missing weights otherwise fail here, before any data is read or model trained."""
    from cnn_lab.models.resnet import WeightsUnavailableError, load_weights

    weights = model["options"].get("weights", "none")
    if model["family"] != "resnet" or weights in ("none", None, PRETRAIN):
        return False  # PRETRAIN weights are made by this run (pretrain_variant)
    key = f"{STUDY}.models.{name}.options.weights"
    try:
        load_weights(model["options"].get("arch", "resnet18"), weights, key=key)
    except WeightsUnavailableError as err:
        if not model["scratch_if_weights_missing"]:
            raise WeightsUnavailableError(
                f"{err} (or set {STUDY}.models.{name}.scratch_if_weights_missing: true to "
                f"train it from scratch instead)"
            ) from err
        logger.warning(
            "[%s.%s] %s; training it FROM SCRATCH with every layer trainable instead "
            "(scratch_if_weights_missing is true), so it is not the pretrained model",
            STUDY,
            name,
            err,
        )
        return True
    return False


def validate_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Fail before any data is read if a parameter is wrong; pass on the full config,
    with each model's weights resolved (``weights_fallback``)."""
    config = validate_parameters(CamParams, raw, STUDY).model_dump()
    check_precision(config, STUDY)
    for name, model in config["models"].items():
        model["weights_fallback"] = _check_weights(name, model)
    return config


def prepare_dataset(config: dict[str, Any]) -> tuple[DatasetBundle, pd.DataFrame]:
    """The images and, where the source has them, the object boxes (one row per image)."""
    data = config["data"]
    if data["source"] == "shapes":
        shapes = data["shapes"]
        bundle, boxes = _draw_shapes(
            config, shapes["train_size"], shapes["test_size"], shapes["classes"], config["seed"]
        )
        frames = [
            pd.DataFrame(b, columns=BOX_COLUMNS[2:]).assign(split=part, index=range(len(b)))
            for part, b in boxes.items()
        ]
        return bundle, pd.concat(frames, ignore_index=True)[BOX_COLUMNS]
    from cnn_lab.data.imagenette import load_imagenette

    bundle = load_imagenette(
        data["root"],
        image_size=data["image_size"],
        download=data["download"],
        max_per_class=data["max_per_class"],
        workers=data["workers"],
        key=f"{STUDY}.data",
    )
    return bundle, pd.DataFrame(columns=BOX_COLUMNS)  # Imagenette has no boxes


def _test_part(
    bundle: DatasetBundle, split: dict[str, Any], boxes: pd.DataFrame, limit: int | None = None
) -> tuple[LabelledImages, np.ndarray | None]:
    """The images CAMs are measured on (the test split) and their boxes, if known."""
    if split["test"] == "official":
        images, part, index = bundle.test, "test", np.arange(len(bundle.test))
    else:
        index = np.asarray(split["test"], dtype=np.int64)
        pool = bundle.train
        images = LabelledImages(pool.images[index], pool.labels[index], pool.class_names)
        part = "train"
    if limit is not None and limit < len(images):
        index = index[:limit]
        images = LabelledImages(images.images[:limit], images.labels[:limit], images.class_names)
    rows = boxes[boxes["split"] == part].set_index("index") if len(boxes) else None
    if rows is None or rows.empty:
        return images, None
    return images, rows.loc[index, ["x0", "y0", "x1", "y1"]].to_numpy(np.int64)


def choose_examples(
    bundle: DatasetBundle, split: dict[str, Any], config: dict[str, Any]
) -> dict[str, list[int]]:
    """Test images to draw: one per class (grid) and a few for the top-k grid, by seed."""
    test, _ = _test_part(bundle, split, pd.DataFrame(columns=BOX_COLUMNS))
    order = np.random.default_rng(config["seed"]).permutation(len(test))
    grid = []
    for label in range(test.num_classes):
        hits = order[test.labels[order] == label]
        if len(hits):
            grid.append(int(hits[0]))
    top = [int(i) for i in order[: config["render"]["top_images"]]]
    return {"grid": grid, "top": top}


def uses_pretrain(model: dict[str, Any]) -> bool:
    """Whether ``model`` (a ``cam.models`` entry) starts from the run's own source task."""
    options = model.get("options") if isinstance(model, dict) else None
    return isinstance(options, dict) and options.get("weights") == PRETRAIN


def _build(
    bundle: DatasetBundle,
    model: dict[str, Any],
    pretrained: dict[str, torch.Tensor] | None = None,
) -> nn.Module:
    """``model`` for the bundle's images and classes; ``pretrained`` (the source task's
    state dict) replaces the named weights. A model training from scratch because its
    weights are missing is not frozen: every layer must learn."""
    options = dict(model["options"])
    weights: Weights = options.pop("weights", "none")
    if model["weights_fallback"]:
        weights = "none"
    key = "weights"
    if pretrained is not None:  # every tensor but the head, which has the source's classes
        weights, key = pretrained, PRETRAIN
    return build_model(
        model["family"],
        in_shape=bundle.train.image_shape,
        num_classes=bundle.train.num_classes,
        weights=weights,
        weights_key=key,
        freeze="all" if model["weights_fallback"] else model["freeze"],
        **options,
    )


# The source task's images are drawn with their own seed, apart from the target's.
SOURCE_SEED_OFFSET = 7_000_001


def describe_pretraining(pretraining: dict[str, Any]) -> str:
    """The weights a ``weights: pretrain`` model starts from, as the report states them."""
    return (
        f"pretrained on generated shapes (source classes {', '.join(pretraining['classes'])}; "
        f"{pretraining['train_images']} training images, {pretraining['epochs']} epochs; "
        f"source test accuracy {pretraining['test_accuracy']:.3f})"
    )


def _draw_shapes(
    config: dict[str, Any], train_size: int, test_size: int, classes: list[str], seed: int
) -> tuple[DatasetBundle, Any]:
    """Generated shape images at the study's image size, object scale and noise: the target
    task and the pretraining source differ only in their classes, sizes and seed."""
    from cnn_lab.data.shapes import load_shapes

    data, shapes = config["data"], config["data"]["shapes"]
    return load_shapes(
        train_size,
        test_size,
        image_size=data["image_size"],
        classes=classes,
        scale=tuple(shapes["scale"]),
        noise=shapes["noise"],
        seed=seed,
    )


def pretrain_variant(config: dict[str, Any], *, name: str) -> tuple[nn.Module, dict[str, Any]]:
    """Train model ``name`` on the source task (``cam.pretrain``: shapes of other classes),
    every layer trainable, through the same engine; its weights are what ``weights:
    pretrain`` loads before the head is fine-tuned on the target, as ImageNet's would be."""
    from cnn_lab.data.splits import stratified_split

    use_threads(config["threads"])  # by load; train_model refines it for the model
    spec, source = config["models"][name], config["pretrain"]
    data = config["data"]
    seed = config["seed"] + SOURCE_SEED_OFFSET
    bundle, _ = _draw_shapes(
        config, source["train_size"], source["test_size"], source["classes"], seed
    )
    split = stratified_split(
        bundle.train.labels, val_ratio=data["val_ratio"], seed=seed, test_ratio=None
    )
    options = {**spec["options"], "weights": "none"}
    scratch = {**spec, "options": options, "weights_fallback": False, "freeze": "all"}
    recipe = Recipe(
        **source["training"],
        seed=config["seed"],
        device=config["device"],
        probe_gradients=False,
        performance=PerformanceOptions(**config["performance"]),
    )
    label = f"{name}_pretrain"
    run_params = {
        "study": STUDY,
        "model": label,
        "family": spec["family"],
        "dataset": f"shapes ({', '.join(source['classes'])})",
        "source_classes": source["classes"],
        "source_train_size": source["train_size"],
        **{f"option_{k}": v for k, v in options.items()},
        **source["training"],
        "seed": config["seed"],
    }
    tags = {"study": STUDY, "variant": label, "family": spec["family"]}
    images = {k: data[k] for k in ("image_size", "shapes")}  # what draws the source images
    store = checkpoint_store(STUDY, label, config, run_params, recipe, split, source, images)
    augment = spec["augment"]  # the model's own augmentation
    crops = RandomCrops(augment["crop_size"], tuple(augment["crop_scale"]), flip=augment["flip"])
    with variant_run(store, label, run_params, tags) as run:
        trained = train_model(
            lambda: _build(bundle, scratch),
            SplitData.from_bundle(bundle, split),
            recipe,
            label=f"{STUDY}.{label}",
            augment=crops if augment["crop_size"] is not None or augment["flip"] else None,
            extra_callbacks=run.callbacks,
            checkpoint=store,
            threads=config["threads"],
        )
        history = trained.history
        result = {
            "classes": list(source["classes"]),
            "train_images": len(split["train"]),
            "epochs": len(history.epochs),
            "best_val_accuracy": max(history.column("val_accuracy") or [math.nan]),
            "test_accuracy": trained.test["accuracy"],
            "train_seconds": history.train_seconds,
            "status": "diverged" if history.diverged else "ok",
        }
        if run.logging:
            import mlflow

            mlflow.log_metrics({"test_accuracy": result["test_accuracy"]})
    logger.info("[%s.%s] %s", STUDY, name, describe_pretraining(result))
    return trained.model, result  # the catalog saves the state_dict, loads it back


def train_variant(
    bundle: DatasetBundle,
    split: dict[str, Any],
    config: dict[str, Any],
    pretrained: dict[str, torch.Tensor] | None = None,
    pretraining: dict[str, Any] | None = None,
    *,
    name: str,
) -> tuple[dict[str, Any], nn.Module, nn.Module]:
    """Train one model in its own nested MLflow run; the model is returned twice: once to
    be saved (weights), once to be explained in memory. ``pretrained`` and ``pretraining``
    (weights and summary of :func:`pretrain_variant`) come with ``weights: pretrain``."""
    use_threads(config["threads"])  # by load; train_model refines it for the model
    spec = config["models"][name]
    data = SplitData.from_bundle(bundle, split)
    augment = spec["augment"]
    crops = RandomCrops(augment["crop_size"], tuple(augment["crop_scale"]), flip=augment["flip"])
    recipe = Recipe(
        **spec["training"],
        seed=config["seed"],
        device=config["device"],
        probe_gradients=False,
        performance=PerformanceOptions(**config["performance"]),
    )
    probe = _build(bundle, spec, pretrained)
    weights = "none" if spec["weights_fallback"] else spec["options"].get("weights", "none")
    if pretraining is not None:
        weights = describe_pretraining(pretraining)
    run_params = {
        "study": STUDY,
        "model": name,
        "family": spec["family"],
        "dataset": bundle.name,
        "parameters": count_parameters(probe),
        "trainable_parameters": count_parameters(probe, trainable_only=True),
        "weights_used": weights,
        "freeze": "all" if spec["weights_fallback"] else spec["freeze"],
        **{f"option_{k}": v for k, v in spec["options"].items()},
        **{f"augment_{k}": v for k, v in augment.items()},
        **spec["training"],
        "seed": config["seed"],
        **({"pretrain_status": pretraining["status"]} if pretraining is not None else {}),
    }
    tags = {"study": STUDY, "variant": name, "family": spec["family"]}
    source = config["pretrain"] if pretraining is not None else None  # new source: retrain
    store = checkpoint_store(STUDY, name, config, run_params, recipe, split, source)
    with variant_run(store, name, run_params, tags) as run:
        use_crops = augment["crop_size"] is not None or augment["flip"]
        trained = train_model(
            lambda: _build(bundle, spec, pretrained),
            data,
            recipe,
            label=f"{STUDY}.{name}",
            augment=crops if use_crops else None,
            extra_callbacks=run.callbacks,
            checkpoint=store,
            threads=config["threads"],
        )
        history = trained.history
        val_acc = history.column("val_accuracy") or [math.nan]
        result = {
            "model": name,
            "family": spec["family"],
            "parameters": run_params["parameters"],
            "trainable_parameters": run_params["trainable_parameters"],
            "weights_used": weights,
            "freeze": run_params["freeze"],
            "pretraining": pretraining,
            "status": "diverged" if history.diverged else "ok",
            "diverged_epoch": history.diverged_epoch,
            "precision": trained.performance.get("perf_precision"),
            "epochs_run": len(history.epochs),
            "best_val_accuracy": max(val_acc),
            "final_val_accuracy": val_acc[-1],
            "test_accuracy": trained.test["accuracy"],
            "test_loss": trained.test["loss"],
            "train_seconds": history.train_seconds,
            "normalisation": {"mean": data.normalisation.mean, "std": data.normalisation.std},
            "mlflow_run_id": run.run_id,
            "history": history.epochs,
        }
        if run.logging:
            import mlflow

            mlflow.log_metrics({k: result[k] for k in ("test_accuracy", "train_seconds")})
            mlflow.log_params(trained.performance)
            log_status(result)
    logger.info(
        "[%s.%s] test accuracy %.4f (%.1f s)",
        STUDY,
        name,
        result["test_accuracy"],
        result["train_seconds"],
    )
    model = trained.model.eval()
    return result, model, model


@contextmanager
def _resumed(run_id: str | None) -> Iterator[bool]:
    """Re-enter a model's child run to add its CAM scores; a no-op without tracking."""
    import mlflow

    if run_id is None or mlflow.active_run() is None:
        with nullcontext():
            yield False
        return
    with mlflow.start_run(run_id=run_id, nested=True):
        yield True


def _maps_of(
    model: nn.Module,
    images: np.ndarray,
    norm: Normalisation,
    device: torch.device,
    layer: str | None,
    top_k: int | None = None,
    classes: np.ndarray | None = None,
) -> cam_plots.ModelMaps:
    inputs = norm.apply(torch.as_tensor(images).to(device))
    out = cam.class_activation_maps(
        model,
        inputs,
        classes=None if classes is None else torch.as_tensor(classes),
        top_k=top_k or 1,
        layer=layer,
    )
    probs = out.probabilities.cpu()
    if top_k is None:  # maps of the given (true) classes, titled with the prediction
        best = probs.max(1)
        return cam_plots.ModelMaps(
            "", out.maps[:, 0].cpu().numpy(), best.indices.numpy(), best.values.numpy()
        )
    chosen = out.classes.cpu()
    return cam_plots.ModelMaps(
        "", out.maps.cpu().numpy(), chosen.numpy(), probs.gather(1, chosen).numpy()
    )


def explain_variant(
    model: nn.Module,
    result: dict[str, Any],
    bundle: DatasetBundle,
    split: dict[str, Any],
    boxes: pd.DataFrame,
    examples: dict[str, list[int]],
    config: dict[str, Any],
    *,
    name: str,
) -> dict[str, Any]:
    """CAM localisation on the test split plus the maps the figures draw."""
    spec = config["models"][name]
    device = resolve_device(config["device"])
    model = model.to(device).eval()
    norm = Normalisation(
        tuple(result["normalisation"]["mean"]), tuple(result["normalisation"]["std"])
    )
    test, test_boxes = _test_part(bundle, split, boxes, config["max_eval_images"])
    batches = DeviceBatches(
        test.images,
        test.labels,
        batch_size=spec["training"]["eval_batch_size"],
        device=device,
        normalisation=norm,
    )
    evaluation = cam.evaluate_cams(
        model, batches, test_boxes, layer=spec["feature_layer"], threshold=config["threshold"]
    )
    scores, layer = evaluation.summary(config["iou"]), evaluation.layer
    full, _ = _test_part(bundle, split, boxes)
    grid_idx, top_idx = examples["grid"], examples["top"]
    grid = _maps_of(
        model, full.images[grid_idx], norm, device, layer, classes=full.labels[grid_idx]
    )
    top = _maps_of(
        model, full.images[top_idx], norm, device, layer, top_k=config["render"]["top_k"]
    )
    grid.name = top.name = name
    with _resumed(result["mlflow_run_id"]) as tracking:
        if tracking:
            import mlflow

            mlflow.log_metrics({f"cam_{k}": v for k, v in scores.items()})
            mlflow.set_tag("feature_layer", layer)
    logger.info("[%s.%s] CAM (layer %s): %s", STUDY, name, layer, scores)
    return {"model": name, "layer": layer, "scores": scores, "grid": grid, "top": top}


def chance_levels(
    bundle: DatasetBundle, split: dict[str, Any], boxes: pd.DataFrame, config: dict[str, Any]
) -> dict[str, dict[str, float]]:
    """Localisation of maps that know nothing (uniform) or only the centre bias (centred)."""
    test, test_boxes = _test_part(bundle, split, boxes, config["max_eval_images"])
    if test_boxes is None:
        return {}
    height, width = test.images.shape[-2:]
    levels = cam.chance_scores(
        test_boxes, height, width, threshold=config["threshold"], sigma=config["centre_sigma"]
    )
    return {kind: scores.summary(config["iou"]) for kind, scores in levels.items()}


TABLE_COLUMNS = [
    "method",
    "kind",
    "accuracy",
    "localisation",
    "top1_localisation",
    "pointing_game",
    "mean_iou",
    "images",
    "feature_layer",
]


def localisation_table(
    chance: dict[str, dict[str, float]],
    *explained: dict[str, Any],
    seeds: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One row per model's CAMs and per chance map: localisation at the IoU threshold,
    the pointing game, mean IoU and classification accuracy, side by side. With ``seeds``
    (``explained`` in the order seeds x models) every model has a row per seed, a ``seed``
    column says which, and the metrics logged to the run are the means over seeds."""
    repeats = list(seeds or [None])
    per_seed = len(explained) // len(repeats)
    rows = [
        {"method": e["model"], "kind": "cam", "feature_layer": e["layer"], **e["scores"]}
        | ({} if seeds is None else {"seed": repeats[i // per_seed]})
        for i, e in enumerate(explained)
    ]
    rows += [{"method": f"chance_{kind}", "kind": "chance", **s} for kind, s in chance.items()]
    columns = TABLE_COLUMNS if seeds is None else [*TABLE_COLUMNS, "seed"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    log_table(table, "tables/localisation.csv")
    import mlflow

    if mlflow.active_run() is not None:
        means = table.groupby("method", sort=False)[
            ["accuracy", "localisation", "pointing_game", "mean_iou"]
        ].mean()
        metrics = {
            f"{method}_{col}": float(value)
            for method, row in means.iterrows()
            for col, value in row.items()
            if pd.notna(value)
        }
        mlflow.log_metrics(metrics)
    logger.info("[%s] localisation:\n%s", STUDY, table.to_string(index=False))
    return table


def localisation_by_seed(
    config: dict[str, Any], chance: dict[str, dict[str, float]], *explained: dict[str, Any]
) -> pd.DataFrame:
    """:func:`localisation_table` of every model and training seed of ``config``."""
    seeds = training_seeds(config)
    return localisation_table(chance, *explained, seeds=seeds if len(seeds) > 1 else None)


def render(
    bundle: DatasetBundle,
    split: dict[str, Any],
    boxes: pd.DataFrame,
    examples: dict[str, list[int]],
    config: dict[str, Any],
    *explained: dict[str, Any],
) -> tuple[Figure, Figure]:
    """The per-class CAM grid and the top-k grid, saved by the catalog and logged."""
    test, test_boxes = _test_part(bundle, split, boxes)
    style = {"colormap": config["render"]["colormap"], "alpha": config["render"]["alpha"]}
    grid_idx, top_idx = examples["grid"], examples["top"]
    figures = {
        "cam_grid": cam_plots.cam_grid(
            test.images[grid_idx],
            test.labels[grid_idx],
            test.class_names,
            [e["grid"] for e in explained],
            boxes=None if test_boxes is None else test_boxes[grid_idx],
            **style,
        ),
        "cam_top_k": cam_plots.top_k_grid(
            test.images[top_idx],
            test.labels[top_idx],
            test.class_names,
            [e["top"] for e in explained],
            **style,
        ),
    }
    log_figures(figures)
    return figures["cam_grid"], figures["cam_top_k"]


# --- what people read: the dataset analysis's model and the report ------------------------

MODEL_COLUMNS = [
    "model",
    "family",
    "weights_used",
    "parameters",
    "trainable_parameters",
    "status",
    "epochs_run",
    "best_val_accuracy",
    "test_accuracy",
    "train_seconds",
    "mlflow_run_id",
]


def analysis_model(
    bundle: DatasetBundle,
    config: dict[str, Any],
    result: dict[str, Any],
    state: dict[str, torch.Tensor],
    *,
    name: str,
) -> dict[str, Any]:
    """The trained model ``name`` (its saved weights), whose penultimate features (global
    average pooled maps) the dataset analysis maps beside the raw pixels."""
    spec = config["models"][name]
    options = dict(spec["options"])
    if "weights" in options:
        options["weights"] = "none"  # the saved state replaces them: nothing to download
    model = build_model(
        spec["family"],
        in_shape=bundle.train.image_shape,
        num_classes=bundle.train.num_classes,
        **options,
    )
    model.load_state_dict(state)
    return {
        "model": model,
        "input_size": None,
        "normalisation": result["normalisation"],
        "label": name,
    }


def weights_statement(result: dict[str, Any]) -> str:
    """Which weights a model started from and what of it trained, in the report's words."""
    weights, freeze = result.get("weights_used", "none"), result.get("freeze", "all")
    if weights in ("none", None):
        return "none: trained from scratch, every layer"
    trained = {
        "all": "every layer fine-tuned",
        "head": "only the new head fine-tuned",
    }.get(freeze, f"fine-tuned from {freeze} on (earlier layers frozen)")
    return f"{weights}; {trained}"


def write_report(
    raw_params: dict[str, Any],
    config: dict[str, Any],
    bundle: DatasetBundle,
    split: dict[str, Any],
    localisation: pd.DataFrame,
    analysis: dict[str, Any],
    cam_grid: str,
    cam_top_k: str,
    *results: dict[str, Any],
) -> tuple[str, str]:
    """The run's report (HTML and Markdown), also logged to MLflow: localisation against
    chance, each model's training, the CAM figures and the dataset analysis."""
    seeds = training_seeds(config)
    models = pd.DataFrame([{k: r.get(k) for k in MODEL_COLUMNS} for r in results])
    if len(seeds) > 1:  # results come in the order seeds x models
        models["seed"] = [seed for seed in seeds for _ in range(len(results) // len(seeds))]
    problems = (
        diverged(models, "model")
        + [
            f"{name}: pretrained weights missing, trained from scratch instead "
            f"({STUDY}.models.{name}.scratch_if_weights_missing)"
            for name, spec in config["models"].items()
            if spec["weights_fallback"]
        ]
        + [
            f"{r['model']}: its source-task pretraining diverged, so its head was fine-tuned "
            f"on a diverged network"
            for r in results[: len(config["models"])]
            if (r.get("pretraining") or {}).get("status") == "diverged"
        ]
    )
    return reporting.write_report(
        STUDY,
        raw_params,
        dataset=bundle.name,
        split_sizes=reporting.split_sizes(bundle, split),
        device=str(resolve_device(config["device"])),
        precision=reporting.precision_that_ran(pd.DataFrame(results)),
        tables={
            "localisation (CAMs and chance maps)": reporting.with_integers(
                localisation, ("images", "seed")
            ),
            **(
                {"localisation across seeds": cam_seed_table(localisation)}
                if len(seeds) > 1
                else {}
            ),
            "models": models,
        },
        figures={"cam_grid": cam_grid, "cam_top_k": cam_top_k},
        findings=cam_findings(localisation, models, config["iou"]),
        problems=problems,
        sections=(analysis,),
        settings={
            f"{r['model']} weights": weights_statement(r) for r in results[: len(config["models"])]
        },
    )
