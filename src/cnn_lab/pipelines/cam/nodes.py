"""Thin nodes of the CAM study: they call library code and hand results to the catalog."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from cnn_lab.data.shapes import load_shapes
from cnn_lab.data.sources import DatasetBundle
from cnn_lab.evaluation import localisation
from cnn_lab.evaluation.findings import diverged
from cnn_lab.evaluation.localisation import seed_table as localisation_seeds
from cnn_lab.pipelines.cam.findings import cam_findings
from cnn_lab.runtime.tracking import log_figures, log_metrics, log_table, log_to_run, tag_run
from cnn_lab.study import model_jobs, reporting
from cnn_lab.study.model_jobs import PRETRAIN
from cnn_lab.study.spec import Variant, repeat_over_seeds, training_seeds
from cnn_lab.study.summary import summary_row
from cnn_lab.study.train import train_variant as train_in_run
from cnn_lab.training.batching import Normalisation
from cnn_lab.training.device import resolve_device

STUDY = "cam"
FIGURES = ("cam_grid", "cam_top_k", "cam_methods")
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
    model_jobs.check_weights(STUDY, config["models"])


def prepare_dataset(config: dict[str, Any]) -> tuple[DatasetBundle, pd.DataFrame]:
    """The images and, where the source has them, the object boxes (one row per image)."""
    data = config["data"]
    if data["source"] == "shapes":
        shapes = data["shapes"]
        bundle, boxes = load_shapes(
            shapes["train_size"],
            shapes["test_size"],
            classes=shapes["classes"],
            seed=config["seed"],
            **model_jobs.shapes_drawing(data),
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


def pretrain_variant(
    config: dict[str, Any], *, variant: Variant
) -> tuple[nn.Module, dict[str, Any]]:
    """Train a model on the source task (``cam.pretrain``: shapes of other classes), every
    layer trainable, as its own variant (``<model>_pretrain``); its weights are what
    ``weights: pretrain`` loads before the head is fine-tuned on the target, as ImageNet's
    would be."""
    job, describe = model_jobs.source_job(STUDY, variant, config)
    result, model = train_in_run(variant, job, config, describe, metrics=("test_accuracy",))
    logger.info("[%s] %s", variant.path, model_jobs.describe_pretraining(result))
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
    job, describe = model_jobs.target_job(
        STUDY, variant, config, bundle, split, pretrained, pretraining
    )
    metrics = ("test_accuracy", "train_seconds")
    result, model = train_in_run(variant, job, config, describe, metrics=metrics)
    model.eval()
    return result, model, model


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
    explained = localisation.explain(
        model,
        bundle,
        split,
        boxes,
        config,
        examples=examples,
        name=variant.name,
        norm=Normalisation(*(tuple(result["normalisation"][k]) for k in ("mean", "std"))),
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
    style = {k: config["render"][k] for k in ("colormap", "alpha")}
    figures = localisation.figures(bundle, split, boxes, examples, explained, **style)
    log_figures(figures)
    return tuple(figures[name] for name in FIGURES)


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
    model = model_jobs.build(bundle, config["models"][variant.name], "none", "all")
    model.load_state_dict(state)  # the saved state replaces the weights: nothing to download
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


@reporting.report_node
def write_report(
    run: reporting.RunInputs, localisation: pd.DataFrame, *figures: str
) -> tuple[str, str]:
    """The run's report (HTML and Markdown), also logged to MLflow: localisation against
    chance, each model's training, the CAM figures (in the order of :data:`FIGURES`) and
    the dataset analysis."""
    config, summary = run.config, run.summary
    seeded = len(training_seeds(config)) > 1
    models = summary[[*MODEL_COLUMNS, "seed"] if seeded else MODEL_COLUMNS]
    first = summary.drop_duplicates("model")  # what a model starts from is the same each seed
    seed_table = {"localisation across seeds": localisation_seeds(localisation)} if seeded else {}
    return reporting.report_of(
        STUDY,
        run,
        tables={
            "saliency methods (localisation, faithfulness, time)": reporting.with_integers(
                localisation, ("images", "seed")
            ),
            **seed_table,
            "models": models,
        },
        figures=dict(zip(FIGURES, figures, strict=True)),
        findings=cam_findings(localisation, models, config["iou"]),
        problems=diverged(models, "model") + model_jobs.weights_problems(STUDY, config, first),
        settings={
            f"{r['model']} weights": model_jobs.weights_statement(r) for _, r in first.iterrows()
        },
    )
