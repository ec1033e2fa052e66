"""Fine-tuning a pretrained network as a study variant, or as one trial of a search.

A fine-tuning run stops early on validation accuracy (the best epoch's weights restored)
and trains the backbone at a fraction of the fresh head's learning rate; its summary row
says what it chose and how far it went. The study supplies its validated configuration
(the ``finetune`` and ``early_stopping`` blocks), what the variant chose (:data:`CHOICES`)
and how to build that network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from cnn_lab.models import count_parameters
from cnn_lab.models.resnet import head_parameter_groups
from cnn_lab.runtime import tracking
from cnn_lab.study.spec import Variant
from cnn_lab.study.train import Job, outcome, study_recipe, train_variant
from cnn_lab.study.training_params import TrainingParams
from cnn_lab.training.callbacks import Callback, EarlyStopping
from cnn_lab.training.checkpoint import fingerprint
from cnn_lab.training.recipe import Recipe, SplitData, TrainedModel
from cnn_lab.training.search import PruningCallback

# What one fine-tuning variant chooses; the rest of its recipe is the ``finetune`` block.
CHOICES = ("preset", "optimizer", "lr", "batch_size", "dropout")
# Logged to each fine-tuning run: MLflow name -> summary column.
FINETUNE_METRICS = {
    "best_val_accuracy": "val_accuracy",
    "best_epoch": "best_epoch",
    "train_seconds": "train_seconds",
    "stopped_epoch": "stopped_epoch",
}
# The run's parameters that its summary row repeats.
ROW_PARAMS = ("preset", "optimizer", "lr", "backbone_lr", "batch_size", "dropout")


def block_recipe(
    config: Mapping[str, Any], training: Mapping[str, Any], seed: int, **overrides: Any
) -> Recipe:
    """The recipe of a ``training``-shaped block (its :class:`TrainingParams` keys; a
    fine-tuning block has more) with ``overrides``, on the study's device."""
    # Per-layer gradient norms are the depth study's question, not a fine-tuning one's.
    chosen = {k: training[k] for k in TrainingParams.model_fields} | overrides
    return study_recipe(config, chosen, seed, probe_gradients=False)


def finetune_job(
    config: Mapping[str, Any],
    variant: Variant,
    chosen: Mapping[str, Any],
    build: Callable[[], nn.Module],
    data: SplitData,
    source: Any,
    callbacks: Sequence[Callback] = (),
    checkpointed: bool = True,
) -> Job:
    """A fine-tuning run of ``build()`` with early stopping on validation accuracy (first
    of the job's callbacks; the best epoch's weights restored) and a backbone learning rate
    ``finetune.backbone_lr_multiplier`` times the head's. Its checkpoint is keyed by its
    params, the training and validation split and ``source`` (the weights it starts from).
    ``checkpointed``: saved each epoch and resumed after a kill (search trials are not:
    Optuna reruns them)."""
    ft, stop = config["finetune"], config["early_stopping"]
    multiplier, lr = ft["backbone_lr_multiplier"], chosen["lr"]
    recipe = block_recipe(config, ft, variant.seed, **{k: chosen[k] for k in CHOICES[1:4]})
    params = {
        "study": variant.study,
        "group": variant.group,
        **{k: chosen[k] for k in CHOICES[:3]},
        "backbone_lr": lr * multiplier,
        **{k: chosen[k] for k in CHOICES[3:]},
        "epochs": ft["epochs"],
        "patience": stop["patience"],
        "min_delta": stop["min_delta"],
        "trainable_parameters": count_parameters(build(), trainable_only=True),
        "seed": variant.seed,
    }
    splits = (data.train.images, data.train.labels, data.val.images, data.val.labels)
    return Job(
        build,
        data,
        recipe,
        params,
        key=(fingerprint(*splits, source),),
        tags={"group": variant.group},
        callbacks=[EarlyStopping("val_accuracy", stop["patience"], stop["min_delta"]), *callbacks],
        parameter_groups=lambda m: head_parameter_groups(
            m, lr=lr, backbone_lr_multiplier=multiplier
        ),
        checkpointed=checkpointed,
    )


def train_finetune(
    variant: Variant, job: Job, config: Mapping[str, Any]
) -> tuple[dict[str, Any], nn.Module]:
    """Train a :func:`finetune_job` as ``variant``; its row says what it ran and how far
    it went (the validation accuracy is the best epoch's, whose weights it keeps)."""
    stopper, params = job.callbacks[0], job.params

    def describe(trained: TrainedModel) -> dict[str, Any]:
        row = outcome(trained)
        return {
            "approach": variant.name,
            "group": variant.group,
            "seed": variant.seed,
            **{k: params[k] for k in ROW_PARAMS},
            "val_accuracy": stopper.best if stopper.best is not None else math.nan,
            "train_seconds": row["train_seconds"],
            "trainable_parameters": params["trainable_parameters"],
            "epochs_run": row["epochs_run"],
            "best_epoch": stopper.best_epoch,
            "stopped_epoch": stopper.stopped_epoch,
            **{k: row[k] for k in ("status", "diverged_epoch", "precision")},
        }

    return train_variant(variant, job, config, describe, metrics=FINETUNE_METRICS)


def trial_value(
    variant: Variant, job: Job, config: Mapping[str, Any], trial: Any, pruning: PruningCallback
) -> float:
    """Train a search trial's job (not checkpointed, its ``pruning`` callback among the
    job's) and return its validation accuracy, the value Optuna maximises; the trial
    records its MLflow run and best epoch, and the run says when Optuna pruned it."""
    result, _ = train_finetune(variant, job, config)
    trial.set_user_attr("mlflow_run_id", result["mlflow_run_id"])
    if pruning.pruned_epoch is not None:
        tracking.tag_run(result["mlflow_run_id"], {"status": "pruned"})
    trial.set_user_attr("best_epoch", result["best_epoch"])
    return result["val_accuracy"]
