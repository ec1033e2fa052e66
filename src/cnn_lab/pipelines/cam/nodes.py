"""Thin nodes of the CAM study: they call library code and hand results to the catalog."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from cnn_lab.data.random_crops import RandomCrops
from cnn_lab.data.sources import DatasetBundle, LabelledImages
from cnn_lab.evaluation import cam, cam_plots, saliency
from cnn_lab.evaluation.findings import diverged
from cnn_lab.models import Weights, build_model, count_parameters
from cnn_lab.pipelines.cam.findings import cam_findings, cam_seed_table
from cnn_lab.pipelines.cam.schema import PRETRAIN
from cnn_lab.runtime.tracking import log_figures, log_metrics, log_table, log_to_run, tag_run
from cnn_lab.study import reporting
from cnn_lab.study.spec import Variant, repeat_over_seeds, training_seeds
from cnn_lab.study.summary import summary_row
from cnn_lab.study.train import Job, outcome
from cnn_lab.study.train import train_variant as train_in_run
from cnn_lab.training.batching import DeviceBatches, Normalisation
from cnn_lab.training.device import resolve_device
from cnn_lab.training.performance import PerformanceOptions
from cnn_lab.training.recipe import Recipe, SplitData, TrainedModel

STUDY = "cam"
BOX_COLUMNS = ["split", "index", "x0", "y0", "x1", "y1"]
logger = logging.getLogger(__name__)


def variants(config: dict[str, Any]) -> list[Variant]:
    """Every model of ``cam.models``, once per training seed. A ``weights: pretrain`` model
    carries the seed of its source task: the data's, the same for all its seeds."""
    source = {"pretrain_seed": config["seed"]}
    entries = [
        (None, name, source if spec["options"].get("weights") == PRETRAIN else {})
        for name, spec in config["models"].items()
    ]
    return repeat_over_seeds(STUDY, config, entries)


def source_variant(variant: Variant) -> Variant | None:
    """The source-task training a ``weights: pretrain`` model starts from (None for the
    others): one variant, ``<model>_pretrain``, for all of the model's seeds, as ImageNet
    weights are the same for every seed."""
    if "pretrain_seed" not in variant.options:
        return None
    return Variant(
        STUDY, f"{variant.name}_pretrain", variant["pretrain_seed"], None, {"model": variant.name}
    )


def resolve_weights(config: dict[str, Any], raw: Any) -> None:
    """Fail before any data is read if a model's pretrained weights are missing, unless it
    may train from scratch: each model's ``weights_fallback`` records which."""
    for name, model in config["models"].items():
        model["weights_fallback"] = _check_weights(name, model)


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


def _recipe(config: dict[str, Any], training: dict[str, Any], seed: int) -> Recipe:
    return Recipe(
        **training,
        seed=seed,
        device=config["device"],
        probe_gradients=False,
        performance=PerformanceOptions(**config["performance"]),
    )


def _crops(augment: dict[str, Any]) -> RandomCrops | None:
    """The model's random resized crops and flips, None when it has neither."""
    if augment["crop_size"] is None and not augment["flip"]:
        return None
    return RandomCrops(augment["crop_size"], tuple(augment["crop_scale"]), flip=augment["flip"])


def pretrain_variant(
    config: dict[str, Any], *, variant: Variant
) -> tuple[nn.Module, dict[str, Any]]:
    """Train a model on the source task (``cam.pretrain``: shapes of other classes), every
    layer trainable, as its own variant (``<model>_pretrain``); its weights are what
    ``weights: pretrain`` loads before the head is fine-tuned on the target, as ImageNet's
    would be."""
    from cnn_lab.data.splits import stratified_split

    spec, source = config["models"][variant["model"]], config["pretrain"]
    seed = variant.seed + SOURCE_SEED_OFFSET  # the source images' own seed
    bundle, _ = _draw_shapes(
        config, source["train_size"], source["test_size"], source["classes"], seed
    )
    split = stratified_split(
        bundle.train.labels, val_ratio=config["data"]["val_ratio"], seed=seed, test_ratio=None
    )
    options = {**spec["options"], "weights": "none"}
    scratch = {**spec, "options": options, "weights_fallback": False, "freeze": "all"}
    params = {
        "study": STUDY,
        "model": variant.label,
        "family": spec["family"],
        "dataset": f"shapes ({', '.join(source['classes'])})",
        "source_classes": source["classes"],
        "source_train_size": source["train_size"],
        **{f"option_{k}": v for k, v in options.items()},
        **source["training"],
        "seed": variant.seed,
    }
    images = {k: config["data"][k] for k in ("image_size", "shapes")}  # what draws them
    job = Job(
        lambda: _build(bundle, scratch),
        SplitData.from_bundle(bundle, split),
        _recipe(config, source["training"], variant.seed),
        params,
        key=(split, source, images),
        tags={"family": spec["family"]},
        augment=_crops(spec["augment"]),  # the model's own augmentation
    )

    def describe(trained: TrainedModel) -> dict[str, Any]:
        row = outcome(trained)
        return {
            "classes": list(source["classes"]),
            "train_images": len(split["train"]),
            "epochs": row["epochs_run"],
            **{k: row[k] for k in ("best_val_accuracy", "test_accuracy", "train_seconds")},
            "status": row["status"],
        }

    result, model = train_in_run(variant, job, config, describe, metrics=("test_accuracy",))
    logger.info("[%s] %s", variant.path, describe_pretraining(result))
    return model, {k: v for k, v in result.items() if k != "history"}  # JSON


def train_variant(
    bundle: DatasetBundle,
    split: dict[str, Any],
    config: dict[str, Any],
    pretrained: dict[str, torch.Tensor] | None = None,
    pretraining: dict[str, Any] | None = None,
    *,
    variant: Variant,
) -> tuple[dict[str, Any], nn.Module, nn.Module]:
    """Train one model with its seed in its own nested MLflow run; the model is returned
    twice: once to be saved (weights), once to be explained in memory. ``pretrained`` and
    ``pretraining`` (weights and summary of :func:`pretrain_variant`) come with ``weights:
    pretrain``."""
    spec = config["models"][variant.name]
    params = _run_params(bundle, spec, variant, pretrained, pretraining)
    data = SplitData.from_bundle(bundle, split)
    job = Job(
        lambda: _build(bundle, spec, pretrained),
        data,
        _recipe(config, spec["training"], variant.seed),
        params,
        key=(split, config["pretrain"] if pretraining is not None else None),  # new source: retrain
        tags={"family": spec["family"]},
        augment=_crops(spec["augment"]),
    )

    def describe(trained: TrainedModel) -> dict[str, Any]:
        return {
            "model": variant.name,
            "variant": variant.label,
            "seed": variant.seed,
            **{k: params[k] for k in ("family", "parameters", "trainable_parameters")},
            **{k: params[k] for k in ("weights_used", "freeze")},
            "pretraining": pretraining,
            **outcome(trained),
            "normalisation": {"mean": data.normalisation.mean, "std": data.normalisation.std},
        }

    result, model = train_in_run(
        variant, job, config, describe, metrics=("test_accuracy", "train_seconds")
    )
    model.eval()
    return result, model, model


def _run_params(
    bundle: DatasetBundle,
    spec: dict[str, Any],
    variant: Variant,
    pretrained: dict[str, torch.Tensor] | None,
    pretraining: dict[str, Any] | None,
) -> dict[str, Any]:
    """What the model's MLflow run records (and its checkpoint is keyed by)."""
    probe = _build(bundle, spec, pretrained)
    weights = "none" if spec["weights_fallback"] else spec["options"].get("weights", "none")
    if pretraining is not None:
        weights = describe_pretraining(pretraining)
    return {
        "study": STUDY,
        "model": variant.name,
        "family": spec["family"],
        "dataset": bundle.name,
        "parameters": count_parameters(probe),
        "trainable_parameters": count_parameters(probe, trainable_only=True),
        "weights_used": weights,
        "freeze": "all" if spec["weights_fallback"] else spec["freeze"],
        **{f"option_{k}": v for k, v in spec["options"].items()},
        **{f"augment_{k}": v for k, v in spec["augment"].items()},
        **spec["training"],
        "seed": variant.seed,
        **({"pretrain_status": pretraining["status"]} if pretraining is not None else {}),
    }


def _maps_of(
    model: nn.Module,
    images: np.ndarray,
    *,
    name: str,
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
            name, out.maps[:, 0].cpu().numpy(), best.indices.numpy(), best.values.numpy()
        )
    chosen = out.classes.cpu()
    return cam_plots.ModelMaps(
        name, out.maps.cpu().numpy(), chosen.numpy(), probs.gather(1, chosen).numpy()
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
    variant: Variant,
) -> dict[str, Any]:
    """CAM localisation on the test split, added to the model's MLflow run, every saliency
    method's scores on the compared images, and the maps the figures draw."""
    spec = config["models"][variant.name]
    device = resolve_device(config["device"])
    model = model.to(device).eval()
    norm = Normalisation(*(tuple(result["normalisation"][k]) for k in ("mean", "std")))
    test, test_boxes = _test_part(bundle, split, boxes, config["max_eval_images"])
    evaluation = cam.evaluate_cams(
        model,
        _batches(test, spec, device, norm),
        test_boxes,
        layer=spec["feature_layer"],
        threshold=config["threshold"],
    )
    scores, layer = evaluation.summary(config["iou"]), evaluation.layer
    methods = _compare_methods(model, test, test_boxes, evaluation, config, spec, device, norm)
    logged = {f"cam_{k}": v for k, v in scores.items()} | {
        f"saliency_{saliency.metric_name(m)}_{k}": v
        for m, row in methods.items()
        for k, v in row.items()
    }
    log_to_run(result["mlflow_run_id"], logged)
    tag_run(result["mlflow_run_id"], {"feature_layer": layer})
    logger.info("[%s] CAM (layer %s): %s", variant.path, layer, scores)
    full, _ = _test_part(bundle, split, boxes)
    maps = partial(_maps_of, model, name=variant.name, norm=norm, device=device, layer=layer)
    grid, top = examples["grid"], examples["top"]
    return {
        "model": variant.name,
        "seed": variant.seed,
        "layer": layer,
        "scores": scores,
        "methods": methods,
        "grid": maps(full.images[grid], classes=full.labels[grid]),
        "top": maps(full.images[top], top_k=config["render"]["top_k"]),
        "method_maps": _method_maps(model, full, grid, config, layer, device, norm),
    }


def _batches(
    images: LabelledImages, spec: dict[str, Any], device: torch.device, norm: Normalisation
) -> DeviceBatches:
    return DeviceBatches(
        images.images,
        images.labels,
        batch_size=spec["training"]["eval_batch_size"],
        device=device,
        normalisation=norm,
    )


def _compare_methods(
    model: nn.Module,
    test: LabelledImages,
    test_boxes: np.ndarray | None,
    evaluation: cam.CamEvaluation,
    config: dict[str, Any],
    spec: dict[str, Any],
    device: torch.device,
    norm: Normalisation,
) -> dict[str, dict[str, float]]:
    """Each method's localisation, faithfulness and time per image on the first
    ``method_images`` test images (the same images for every method and model)."""
    n = min(config["method_images"] or len(test), len(test))
    part = LabelledImages(test.images[:n], test.labels[:n], test.class_names)
    part_boxes = None if test_boxes is None else test_boxes[:n]
    correct = evaluation.predictions[:n] == evaluation.targets[:n]
    rows = {}
    for method in config["methods"]:
        measured = saliency.evaluate_method(
            model,
            _batches(part, spec, device, norm),
            part_boxes,
            method=method,
            layer=evaluation.layer,
            threshold=config["threshold"],
            steps=config["faithfulness_steps"],
            batch_size=spec["training"]["eval_batch_size"],
            sigma=config["centre_sigma"],
        )
        row = measured.summary(config["iou"]) | {"accuracy": float(correct.mean()), "images": n}
        if measured.iou is not None:  # the paper's top-1: right class and a good box
            row["top1_localisation"] = float(np.mean(correct & (measured.iou >= config["iou"])))
        rows[method] = row
    return rows


def _method_maps(
    model: nn.Module,
    images: LabelledImages,
    chosen: list[int],
    config: dict[str, Any],
    layer: str,
    device: torch.device,
    norm: Normalisation,
) -> dict[str, np.ndarray]:
    """Each (non-chance) method's maps of the true class of the grid's images."""
    inputs = norm.apply(torch.as_tensor(images.images[chosen]).to(device))
    labels = torch.as_tensor(images.labels[chosen], dtype=torch.long, device=device)
    maps = {}
    for method in config["methods"]:
        if method in saliency.CHANCE_METHODS:
            continue
        with saliency.explainer(model, method, layer=layer) as explain:
            maps[method] = explain(inputs, labels).numpy()
    return maps


TABLE_COLUMNS = [
    "model",
    "method",
    "kind",
    "accuracy",
    "localisation",
    "top1_localisation",
    "pointing_game",
    "mean_iou",
    "deletion_auc",
    "insertion_auc",
    "ms_per_image",
    "images",
    "feature_layer",
]


def localisation_table(config: dict[str, Any], *explained: dict[str, Any]) -> pd.DataFrame:
    """One row per model, saliency method and seed (with ``seeds``: a ``seed`` column says
    which): localisation at the IoU threshold, the pointing game, mean IoU, deletion and
    insertion AUC, milliseconds per image and the model's accuracy, side by side; chance
    maps are methods of kind ``chance``. The metrics logged to the run are seed means."""
    rows = [
        {
            "model": e["model"],
            "method": method,
            "kind": "chance" if method in saliency.CHANCE_METHODS else "saliency",
            "feature_layer": None if method in saliency.CHANCE_METHODS else e["layer"],
            **scores,
            "seed": e["seed"],
        }
        for e in sorted(explained, key=lambda e: e["seed"])  # seed by seed, as variants run
        for method, scores in e["methods"].items()
    ]
    seeded = len(training_seeds(config)) > 1
    table = pd.DataFrame(rows).reindex(
        columns=[*TABLE_COLUMNS, "seed"] if seeded else TABLE_COLUMNS
    )
    log_table(table, "tables/localisation.csv")
    measures = ["accuracy", "localisation", "pointing_game", "mean_iou"]
    measures += ["deletion_auc", "insertion_auc", "ms_per_image"]
    means = table.groupby(["model", "method"], sort=False)[measures].mean()
    log_metrics(
        {
            f"{model}_{saliency.metric_name(method)}_{col}": float(value)
            for (model, method), row in means.iterrows()
            for col, value in row.items()
            if pd.notna(value)
        }
    )
    logger.info("[%s] localisation:\n%s", STUDY, table.to_string(index=False))
    return table


def render(
    bundle: DatasetBundle,
    split: dict[str, Any],
    boxes: pd.DataFrame,
    examples: dict[str, list[int]],
    config: dict[str, Any],
    *explained: dict[str, Any],
) -> tuple[Figure, Figure, Figure]:
    """The per-class CAM grid, the top-k grid and the methods grid (methods in rows,
    classes in columns, for each model), saved by the catalog and logged."""
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
        "cam_methods": cam_plots.methods_grid(
            test.images[grid_idx],
            test.labels[grid_idx],
            test.class_names,
            [(e["model"], m, maps) for e in explained for m, maps in e["method_maps"].items()],
            boxes=None if test_boxes is None else test_boxes[grid_idx],
            **style,
        ),
    }
    log_figures(figures)
    return figures["cam_grid"], figures["cam_top_k"], figures["cam_methods"]


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
    variant: Variant,
) -> dict[str, Any]:
    """The trained model of ``variant`` (its saved weights), whose penultimate features (global
    average pooled maps) the dataset analysis maps beside the raw pixels."""
    spec = config["models"][variant.name]
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
        "label": variant.name,
    }


def summarise(*results: dict[str, Any]) -> pd.DataFrame:
    """One row per model and seed (seed by seed): how it trained, from which weights, and
    how it scored; the report's model table, findings and weights statements read it."""
    rows = [
        {k: v for k, v in summary_row(r).items() if k not in ("pretraining", "normalisation")}
        | {"pretrain_status": (r["pretraining"] or {}).get("status")}
        for r in results
    ]
    return pd.DataFrame(rows).sort_values("seed", kind="stable", ignore_index=True)


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
    summary: pd.DataFrame,
    localisation: pd.DataFrame,
    analysis: dict[str, Any],
    cam_grid: str,
    cam_top_k: str,
    cam_methods: str,
    claims: pd.DataFrame,
    confusion: str,
) -> tuple[str, str]:
    """The run's report (HTML and Markdown), also logged to MLflow: localisation against
    chance, each model's training, the CAM figures and the dataset analysis."""
    seeded = len(training_seeds(config)) > 1
    models = summary[[*MODEL_COLUMNS, "seed"] if seeded else MODEL_COLUMNS]
    first = summary.drop_duplicates("model")  # what a model starts from is the same each seed
    seed_table = {"localisation across seeds": cam_seed_table(localisation)} if seeded else {}
    return reporting.write_report(
        STUDY,
        raw_params,
        dataset=bundle.name,
        split_sizes=reporting.split_sizes(bundle, split),
        device=str(resolve_device(config["device"])),
        precision=reporting.precision_that_ran(summary),
        tables={
            "saliency methods (localisation, faithfulness, time)": reporting.with_integers(
                localisation, ("images", "seed")
            ),
            **seed_table,
            "models": models,
        },
        figures={"cam_grid": cam_grid, "cam_top_k": cam_top_k, "cam_methods": cam_methods},
        findings=cam_findings(localisation, models, config["iou"]),
        problems=diverged(models, "model") + _weights_problems(config, first),
        sections=(analysis,),
        settings={f"{r['model']} weights": weights_statement(r) for _, r in first.iterrows()},
        claims=claims,
        confusion=confusion,
    )


def _weights_problems(config: dict[str, Any], models: pd.DataFrame) -> list[str]:
    """Models that did not start from the weights asked for."""
    missing = [
        f"{name}: pretrained weights missing, trained from scratch instead "
        f"({STUDY}.models.{name}.scratch_if_weights_missing)"
        for name, spec in config["models"].items()
        if spec["weights_fallback"]
    ]
    return missing + [
        f"{name}: its source-task pretraining diverged, so its head was fine-tuned on a "
        f"diverged network"
        for name in models.loc[models["pretrain_status"] == "diverged", "model"]
    ]
