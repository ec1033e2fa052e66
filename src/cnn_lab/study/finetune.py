"""Fine-tuning a pretrained network as a study variant, or as one trial of a search.

A fine-tuning run stops early on validation accuracy (the best epoch's weights restored)
and trains the backbone at a fraction of the fresh head's learning rate; its summary row
says what it chose and how far it went. The study supplies its validated configuration
(the ``finetune``, ``optimizers``, ``search`` and ``early_stopping`` blocks, from which
each variant's choice, :data:`CHOICES`, follows) and its :class:`TransferNetworks`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import Tensor, nn

from cnn_lab.data.sources import DatasetBundle
from cnn_lab.models import Head, build_model, count_parameters
from cnn_lab.models.factory import Weights
from cnn_lab.models.resnet import head_parameter_groups
from cnn_lab.runtime import tracking
from cnn_lab.study.spec import Variant, repeat_over_seeds, training_seeds
from cnn_lab.study.train import Job, outcome, study_recipe, train_variant
from cnn_lab.study.training_params import TrainingParams
from cnn_lab.training.callbacks import EarlyStopping
from cnn_lab.training.checkpoint import fingerprint
from cnn_lab.training.recipe import Recipe, SplitData, TrainedModel
from cnn_lab.training.search import PruningCallback
from cnn_lab.training.threads import use_threads

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


@dataclass(frozen=True)
class TransferNetworks:
    """A source network and the networks fine-tuned from it: one ``family`` built with the
    same factory ``options`` (the source task's classes); a target gets a fresh head of
    ``target_classes`` behind dropout and a freezing preset (``freeze_bn_stats``: the
    frozen layers' BatchNorm statistics too). ``weights_key`` names the source weights'
    parameter in errors; ``settings`` are logged with the source network."""

    family: str
    options: Mapping[str, Any]
    target_classes: int
    freeze_bn_stats: bool
    weights_key: str
    settings: Mapping[str, Any]

    def source(self, weights: Weights = "none") -> nn.Module:
        return build_model(
            self.family, weights=weights, weights_key=self.weights_key, **self.options
        )

    def target(
        self, preset: str, dropout: float, source_state: Mapping[str, Tensor] | None = None
    ) -> nn.Module:
        """The source architecture (with ``source_state`` when given), a fresh target head
        with dropout before it, and ``preset``'s layers frozen."""
        return build_model(
            self.family,
            weights=source_state,
            weights_key="source",
            head=Head(self.target_classes, dropout),
            freeze=preset,
            freeze_bn_stats=self.freeze_bn_stats,
            **self.options,
        )

    def trained_source(self, state: Mapping[str, Tensor]) -> nn.Module:
        model = self.source()
        model.load_state_dict(state)
        return model

    def trained_target(self, result: Mapping[str, Any], state: Mapping[str, Tensor]) -> nn.Module:
        """A fine-tuned network again, from its summary row (preset, dropout) and weights."""
        model = self.target(result["preset"], result["dropout"])
        model.load_state_dict(state)
        return model


def source_network(
    variant: Variant,
    networks: TransferNetworks,
    weights: str,
    bundle: DatasetBundle,
    split: dict[str, Any],
    config: Mapping[str, Any],
    training: Mapping[str, Any],
) -> tuple[nn.Module, dict[str, Any]]:
    """The source network, trained on ``bundle`` as ``variant`` with the ``training``
    block when ``weights`` is ``train``, else loaded (``imagenet`` or a checkpoint path)
    in a run of its own. Its row says which, and for a trained one how well it did."""
    study = variant.study
    params = {"study": study, "dataset": bundle.name, "weights": weights, **networks.settings}
    if weights != "train":
        use_threads(config["threads"])
        tags = {"study": study, "variant": variant.name}
        with tracking.child_run(variant.name, params, tags) as run_id:
            model = networks.source(weights)
            return model, {"weights": weights, "trained": False, "mlflow_run_id": run_id}
    recipe = block_recipe(config, training, variant.seed)
    job = Job(networks.source, SplitData.from_bundle(bundle, split), recipe, params, key=(split,))

    def describe(trained: TrainedModel) -> dict[str, Any]:
        row = outcome(trained)
        return {
            "weights": "train",
            "trained": True,
            "dataset": bundle.name,
            "val_accuracy": row["final_val_accuracy"],
            **{k: row[k] for k in ("test_accuracy", "train_seconds")},
            "parameters": count_parameters(trained.model),
        }

    metrics = {f"{variant.name}_test_accuracy": "test_accuracy"}
    result, model = train_variant(variant, job, config, describe, metrics=metrics)
    return model, {k: v for k, v in result.items() if k != "history"}


def optimizer_variant(name: str, lr: float) -> str:
    """``adam_lr1e-03``: no dots, so the name can be a Kedro namespace."""
    return f"{name}_lr{lr:.0e}"


def finetune_variants(study: str, config: Mapping[str, Any]) -> list[Variant]:
    """Every fine-tuning preset (``finetune.presets``), every (optimizer, lr) of the
    ``optimizers`` grid and the tuned model, once per training seed, seed by seed (the
    summary lists them so)."""
    entries = [("finetune", p, {"preset": p}) for p in config["finetune"]["presets"]]
    grid = config["optimizers"]
    entries += [
        ("optimizers", optimizer_variant(name, lr), {"optimizer": name, "lr": lr})
        for name in grid["names"]
        for lr in grid["lrs"]
    ]
    entries.append(("search", "tuned", {}))
    unique = {(g, n): (g, n, o) for g, n, o in entries}.values()
    seeds = training_seeds(config)
    return sorted(repeat_over_seeds(study, config, unique), key=lambda v: seeds.index(v.seed))


def finetune_choice(
    config: Mapping[str, Any], variant: Variant, best: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """What ``variant`` fine-tunes with (:data:`CHOICES`): a preset (group ``finetune``)
    with the shared ``finetune`` settings, an optimizer and learning rate (``optimizers``)
    on ``optimizers.preset``, or the search's ``best`` configuration."""
    ft = config["finetune"]
    shared = {k: ft[k] for k in ("optimizer", "lr", "batch_size", "dropout")}
    if variant.group == "finetune":
        return {"preset": variant["preset"], **shared}
    if variant.group == "optimizers":
        preset = config["optimizers"]["preset"]
        return {**shared, "preset": preset, "optimizer": variant["optimizer"], "lr": variant["lr"]}
    (tuned,) = best
    return searched_choice(config, tuned)


def searched_choice(config: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, Any]:
    """A point of the search space (a trial's or the best) as a fine-tuning choice: on
    ``search.preset``, with ``finetune.optimizer`` unless the search picks optimizers."""
    return {
        "preset": config["search"]["preset"],
        "optimizer": point.get("optimizer", config["finetune"]["optimizer"]),
        **{k: point[k] for k in ("lr", "batch_size", "dropout")},
    }


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
    networks: TransferNetworks,
    data: SplitData,
    source_state: Mapping[str, Tensor],
    pruning: PruningCallback | None = None,
) -> Job:
    """``chosen``'s fine-tuning of the source network (``source_state``) with early
    stopping on validation accuracy (first of the job's callbacks; the best epoch's
    weights restored) and a backbone learning rate ``finetune.backbone_lr_multiplier``
    times the head's. Its checkpoint is keyed by its params, the training and validation
    split and the source weights; it is saved each epoch and resumed after a kill, except
    for a search trial (with its ``pruning`` callback): Optuna reruns that."""
    build = partial(networks.target, chosen["preset"], chosen["dropout"], source_state)
    callbacks, checkpointed = ([pruning], False) if pruning is not None else ([], True)
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
        key=(fingerprint(*splits, source_state),),
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
