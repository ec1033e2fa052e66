"""Thin nodes of the CAM study: they call library code and hand results to the catalog."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from cnn_lab.data.random_crops import RandomCrops
from cnn_lab.data.sources import DatasetBundle
from cnn_lab.evaluation import cam_plots, localisation
from cnn_lab.evaluation.findings import diverged
from cnn_lab.models import Weights, build_model, count_parameters
from cnn_lab.pipelines.cam.findings import cam_findings, cam_seed_table
from cnn_lab.pipelines.cam.schema import PRETRAIN
from cnn_lab.runtime.tracking import log_figures, log_metrics, log_table, log_to_run, tag_run
from cnn_lab.study import reporting
from cnn_lab.study.spec import Variant, repeat_over_seeds, training_seeds
from cnn_lab.study.summary import summary_row
from cnn_lab.study.train import Job, outcome, study_recipe
from cnn_lab.study.train import train_variant as train_in_run
from cnn_lab.training.batching import Normalisation
from cnn_lab.training.device import resolve_device
from cnn_lab.training.recipe import SplitData, TrainedModel

STUDY = "cam"
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
        return bundle, localisation.box_table(boxes)
    from cnn_lab.data.imagenette import load_imagenette

    bundle = load_imagenette(
        data["root"],
        image_size=data["image_size"],
        download=data["download"],
        max_per_class=data["max_per_class"],
        workers=data["workers"],
        key=f"{STUDY}.data",
    )
    return bundle, localisation.box_table(None)  # Imagenette has no boxes


def choose_examples(
    bundle: DatasetBundle, split: dict[str, Any], config: dict[str, Any]
) -> dict[str, list[int]]:
    """Test images to draw: one per class (grid) and a few for the top-k grid, by seed."""
    test, _ = localisation.test_part(bundle, split, localisation.box_table(None))
    return localisation.choose_examples(test, config["seed"], config["render"]["top_images"])


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
        study_recipe(config, source["training"], variant.seed, probe_gradients=False),
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
        study_recipe(config, spec["training"], variant.seed, probe_gradients=False),
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
    norm = Normalisation(*(tuple(result["normalisation"][k]) for k in ("mean", "std")))
    test, test_boxes = localisation.test_part(bundle, split, boxes, config["max_eval_images"])
    explained = localisation.explain(
        model,
        test,
        test_boxes,
        localisation.test_part(bundle, split, boxes)[0],
        examples,
        config,
        name=variant.name,
        norm=norm,
        device=resolve_device(config["device"]),
        layer=spec["feature_layer"],
        batch_size=spec["training"]["eval_batch_size"],
    )
    log_to_run(result["mlflow_run_id"], localisation.run_metrics(explained))
    tag_run(result["mlflow_run_id"], {"feature_layer": explained["layer"]})
    logger.info("[%s] CAM (layer %s): %s", variant.path, explained["layer"], explained["scores"])
    return {"model": variant.name, "seed": variant.seed, **explained}


def localisation_table(config: dict[str, Any], *explained: dict[str, Any]) -> pd.DataFrame:
    """One row per model, saliency method and seed (with ``seeds``: a ``seed`` column says
    which): localisation at the IoU threshold, the pointing game, mean IoU, deletion and
    insertion AUC, milliseconds per image and the model's accuracy, side by side; chance
    maps are methods of kind ``chance``. The metrics logged to the run are seed means."""
    table = localisation.localisation_table(explained, len(training_seeds(config)) > 1)
    log_table(table, "tables/localisation.csv")
    log_metrics(localisation.seed_means(table))
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
    test, test_boxes = localisation.test_part(bundle, split, boxes)
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
        **reporting.what_ran(config, summary),
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
