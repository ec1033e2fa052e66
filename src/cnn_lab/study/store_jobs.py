"""Training jobs for the artworks study's variants (``variants``, ``model``, ``training``,
``augmentation``): a ResNet of :data:`cnn_lab.models.resnet_variants.VARIANTS` trained on
the decoded-image store through DataLoader-fed batches, with a class-weighted loss.

Functions take the validated config; the node only hands the job to the variant's run.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from torch import nn

from cnn_lab.data.artworks import SPLITS, open_store
from cnn_lab.data.image_cache import BatchedImages, DecodedImages
from cnn_lab.evaluation import class_report
from cnn_lab.models import count_parameters
from cnn_lab.models.resnet_variants import VARIANTS, build_variant
from cnn_lab.study.spec import Variant
from cnn_lab.study.train import Describe, Job, outcome, study_recipe
from cnn_lab.training.augment import BatchAugment
from cnn_lab.training.batching import Normalisation
from cnn_lab.training.device import resolve_device
from cnn_lab.training.loader import LoaderBatches
from cnn_lab.training.loss import balanced_class_weights
from cnn_lab.training.recipe import Batches, Recipe, TrainedModel

OUTCOME = ("status", "diverged_epoch", "precision", "epochs_run")
VALIDATION = ("best_val_accuracy", "final_val_accuracy")


def split_batches(
    store, images, split, normalisation, config, part: str, seed: int
) -> LoaderBatches:
    """One split's DataLoader-fed batches on the run's device (training ones shuffled and
    augmented); the training run lays them out as the model is."""
    rows = split[part]
    training = part == "train"
    aug = config["augmentation"]
    augment = BatchAugment(**{**aug, "crop_scale": tuple(aug["crop_scale"])})
    return LoaderBatches(
        BatchedImages(store, rows, images["label"].to_numpy()[rows]),
        batch_size=config["training"]["batch_size" if training else "eval_batch_size"],
        device=resolve_device(config["device"]),
        normalisation=Normalisation(tuple(normalisation["mean"]), tuple(normalisation["std"])),
        shuffle=training,
        seed=seed,
        augment=augment if training and augment.active else None,
        workers=config["data"]["workers"],
    )


def recipe(config: dict[str, Any], variant: Variant) -> Recipe:
    """The variant's training recipe: the shared ``training`` block at its own ``lr``."""
    training = {k: v for k, v in config["training"].items() if k != "class_weights"}
    lr = config["variants"][variant.name]["lr"]
    # Frozen stages have no gradients to probe.
    return study_recipe(config, training | {"lr": lr}, variant.seed, probe_gradients=False)


def trainable(model: nn.Module) -> list[dict[str, Any]]:
    """The optimizer's one group: the parameters the variant does not freeze."""
    return [{"params": [p for p in model.parameters() if p.requires_grad]}]


def variant_info(variant: Variant, config: dict[str, Any], model: nn.Module, size: int) -> dict:
    """What the variant is: its summary row's first columns."""
    kind, settings = VARIANTS[variant.name], config["variants"][variant.name]
    return {
        "variant": variant.name,
        "description": kind.description,
        "arch": config["model"]["arch"],
        "family": kind.family,
        "weights": settings["weights"] or "none",
        "freeze": kind.freeze,
        "lr": settings["lr"],
        "image_size": size,
        "parameters": count_parameters(model),
        "trainable_parameters": count_parameters(model, trainable_only=True),
    }


def run_params(info: dict[str, Any], variant: Variant, config: dict[str, Any]) -> dict:
    """What the variant's MLflow run records (and its checkpoint is keyed by)."""
    return {
        **info,
        **{f"training.{k}": v for k, v in config["training"].items()},
        **{f"augmentation.{k}": v for k, v in config["augmentation"].items()},
        "seed": variant.seed,
        "device": str(resolve_device(config["device"])),
    }


def variant_job(
    variant: Variant,
    config: dict[str, Any],
    images: pd.DataFrame,
    decoded: dict[str, Any],
    split: dict[str, Any],
    normalisation: dict[str, Any],
    index_report: dict[str, Any],
) -> tuple[Job, Describe, DecodedImages]:
    """The variant's job (from the decoded-image store, with a class-weighted loss), how a
    trained one is described (what it is, how training went, its test scores and, for the
    per-class report and the figures, its test predictions) and the store it reads."""
    class_names = index_report["class_names"]
    weights = config["variants"][variant.name]["weights"]

    def build() -> nn.Module:
        return build_variant(
            variant.name, num_classes=len(class_names), model=config["model"], weights=weights
        )

    store = open_store(images, decoded, config["data"]["root"])
    train, val, test = (
        split_batches(store, images, split, normalisation, config, part, variant.seed)
        for part in SPLITS
    )
    size = int(decoded["image_size"])
    info = variant_info(variant, config, build(), size)
    labels = images["label"].to_numpy()[split["train"]]
    # Cross-entropy weighted N / (K * n_k) by the training split when asked.
    balanced = config["training"]["class_weights"]
    weight = balanced_class_weights(labels, len(class_names)) if balanced else None
    job = Job(
        build,
        Batches(train, val, None, in_shape=(3, size, size)),
        recipe(config, variant),
        run_params(info, variant, config),
        key=(split, index_report),
        parameter_groups=trainable,
        loss=nn.CrossEntropyLoss(weight=weight),
    )

    def describe(trained: TrainedModel) -> dict[str, Any]:
        test.memory_format = train.memory_format  # as the training run laid out the model
        row = outcome(trained)
        scores, predictions = class_report.test_report(
            trained.model, test, split["test"], class_names, config["report"]["top_k"]
        )
        return {
            **info,
            "seed": variant.seed,
            **{k: row[k] for k in (*OUTCOME, *VALIDATION)},
            **scores,
            "train_seconds": row["train_seconds"],
            **predictions,
        }

    return job, describe, store
