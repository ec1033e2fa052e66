"""Training jobs for a study's model blocks, as the cam study declares them (``models``:
family, options, freeze, augment, training): a block trains on the target from its named
weights or, with ``weights: pretrain``, from a source task's state dict, after training on
that source task (``pretrain``: generated shapes of other classes) as a variant of its own.

Functions take the validated config; ``weights_fallback`` in a block says its named
weights were missing and it trains from scratch (:func:`cnn_lab.models.factory.weights_missing`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import nn

from cnn_lab.data.random_crops import random_crops
from cnn_lab.data.shapes import source_task
from cnn_lab.data.sources import DatasetBundle
from cnn_lab.models import Weights, build_model, count_parameters
from cnn_lab.models.factory import weights_missing
from cnn_lab.study.spec import Variant
from cnn_lab.study.train import Describe, Job, outcome, study_recipe
from cnn_lab.training.recipe import SplitData, TrainedModel

# A block's ``weights`` value: train it first on the study's own source task.
PRETRAIN = "pretrain"


def shapes_drawing(data: dict[str, Any]) -> dict[str, Any]:
    """How shapes are drawn, the source task's as the target's: image size, object scale
    and noise (the ``data`` block's)."""
    shapes = data["shapes"]
    scale = tuple(shapes["scale"])
    return {"image_size": data["image_size"], "scale": scale, "noise": shapes["noise"]}


def check_weights(study: str, blocks: dict[str, dict[str, Any]]) -> None:
    """Fail if a block's named weights are missing, unless it may train from scratch: its
    ``weights_fallback`` records which (``pretrain`` weights are made by the run itself)."""
    for name, block in blocks.items():
        key = f"{study}.models.{name}"
        block["weights_fallback"] = block["options"].get("weights") != PRETRAIN and (
            weights_missing(
                block["family"],
                block["options"],
                key=f"{key}.options.weights",
                scratch=block["scratch_if_weights_missing"],
                scratch_key=f"{key}.scratch_if_weights_missing",
            )
        )


def starting_point(
    block: dict[str, Any], pretrained: dict[str, torch.Tensor] | None = None
) -> tuple[Weights, str]:
    """The weights ``block`` starts from (``pretrained``: the source task's state dict) and
    its freezing preset. A model training from scratch because its weights are missing is
    not frozen: every layer must learn."""
    if block["weights_fallback"]:
        return "none", "all"
    if pretrained is not None:
        return pretrained, block["freeze"]
    return block["options"].get("weights", "none"), block["freeze"]


def build(bundle: DatasetBundle, block: dict[str, Any], weights: Weights, freeze: str) -> nn.Module:
    """``block``'s network for the bundle's images and classes, from ``weights`` (a state
    dict: every tensor but the head, which has the source's classes), ``freeze`` applied."""
    options = {k: v for k, v in block["options"].items() if k != "weights"}
    return build_model(
        block["family"],
        in_shape=bundle.train.image_shape,
        num_classes=bundle.train.num_classes,
        weights=weights,
        weights_key="weights" if isinstance(weights, str) else PRETRAIN,
        freeze=freeze,
        **options,
    )


def describe_pretraining(pretraining: dict[str, Any]) -> str:
    """The weights a ``weights: pretrain`` model starts from, as the report states them."""
    return (
        f"pretrained on generated shapes (source classes {', '.join(pretraining['classes'])}; "
        f"{pretraining['train_images']} training images, {pretraining['epochs']} epochs; "
        f"source test accuracy {pretraining['test_accuracy']:.3f})"
    )


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


def weights_problems(study: str, config: dict[str, Any], models: pd.DataFrame) -> list[str]:
    """Models that did not start from the weights asked for (``models``: a row per model)."""
    missing = [
        f"{name}: pretrained weights missing, trained from scratch instead "
        f"({study}.models.{name}.scratch_if_weights_missing)"
        for name, block in config["models"].items()
        if block["weights_fallback"]
    ]
    return missing + [
        f"{name}: its source-task pretraining diverged, so its head was fine-tuned on a "
        f"diverged network"
        for name in models.loc[models["pretrain_status"] == "diverged", "model"]
    ]


def source_job(study: str, variant: Variant, config: dict[str, Any]) -> tuple[Job, Describe]:
    """The job that trains ``variant['model']``'s block on the source task (``pretrain``),
    every layer trainable, and what its summary row holds: the classes, images, epochs and
    scores :func:`describe_pretraining` states."""
    block, source, data = config["models"][variant["model"]], config["pretrain"], config["data"]
    bundle, split = source_task(
        source["train_size"],
        source["test_size"],
        classes=source["classes"],
        seed=variant.seed,
        val_ratio=data["val_ratio"],
        **shapes_drawing(data),
    )
    options = {**block["options"], "weights": "none"}
    params = {
        "study": study,
        "model": variant.label,
        "family": block["family"],
        "dataset": f"shapes ({', '.join(source['classes'])})",
        "source_classes": source["classes"],
        "source_train_size": source["train_size"],
        **{f"option_{k}": v for k, v in options.items()},
        **source["training"],
        "seed": variant.seed,
    }
    images = {k: data[k] for k in ("image_size", "shapes")}  # what draws them
    job = Job(
        lambda: build(bundle, block, "none", "all"),
        SplitData.from_bundle(bundle, split),
        study_recipe(config, source["training"], variant.seed, probe_gradients=False),
        params,
        key=(split, source, images),
        tags={"family": block["family"]},
        augment=random_crops(**block["augment"]),  # the model's own augmentation
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

    return job, describe


def target_job(
    study: str,
    variant: Variant,
    config: dict[str, Any],
    bundle: DatasetBundle,
    split: dict[str, Any],
    pretrained: dict[str, torch.Tensor] | None = None,
    pretraining: dict[str, Any] | None = None,
) -> tuple[Job, Describe]:
    """The job that trains ``variant``'s block on the bundle's split, from its starting
    point (``pretrained`` and ``pretraining``: the source task's weights and summary row),
    and what its summary row holds."""
    block = config["models"][variant.name]
    weights, freeze = starting_point(block, pretrained)
    probe = build(bundle, block, weights, freeze)
    params = {
        "study": study,
        "model": variant.name,
        "family": block["family"],
        "dataset": bundle.name,
        "parameters": count_parameters(probe),
        "trainable_parameters": count_parameters(probe, trainable_only=True),
        "weights_used": weights if pretraining is None else describe_pretraining(pretraining),
        "freeze": freeze,
        **{f"option_{k}": v for k, v in block["options"].items()},
        **{f"augment_{k}": v for k, v in block["augment"].items()},
        **block["training"],
        "seed": variant.seed,
        **({"pretrain_status": pretraining["status"]} if pretraining is not None else {}),
    }
    data = SplitData.from_bundle(bundle, split)
    job = Job(
        lambda: build(bundle, block, weights, freeze),
        data,
        study_recipe(config, block["training"], variant.seed, probe_gradients=False),
        params,
        key=(split, config["pretrain"] if pretraining is not None else None),  # new source: retrain
        tags={"family": block["family"]},
        augment=random_crops(**block["augment"]),
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

    return job, describe
