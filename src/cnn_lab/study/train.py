"""Training one variant of a study: the frame every study's training node shares.

A study says *what* to train (a :class:`Job`: the network, the split, the recipe, what its
MLflow run records) and *which columns* its summary row has; this module does the rest:
threads, the checkpoint store (resume after a kill, reuse when finished), the nested MLflow
run, the metrics and figures logged there, and one log line under the variant's name.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from torch import nn

from cnn_lab.evaluation.metrics import classification_metrics
from cnn_lab.runtime import tracking
from cnn_lab.study.spec import Variant
from cnn_lab.study.variant_run import checkpoint_store, data_fingerprint, variant_run
from cnn_lab.training.batching import BatchTransform, DeviceBatches
from cnn_lab.training.callbacks import Callback, SplitEvaluation
from cnn_lab.training.device import resolve_device
from cnn_lab.training.performance import PerformanceOptions
from cnn_lab.training.recipe import Batches, Recipe, SplitData, TrainedModel, train_model
from cnn_lab.training.threads import use_threads

logger = logging.getLogger(__name__)


@dataclass
class Job:
    """What one variant trains: ``build`` makes the network (called once per attempt, so a
    reused variant loads its weights into a fresh one), ``params`` is what its MLflow run
    records and, with ``key``, what its checkpoint is keyed by: a change to either starts
    the variant afresh instead of resuming someone else's weights. ``data`` is an
    in-memory split or ready-made :class:`Batches` (a DataLoader source); ``loss`` is the
    training criterion (None: cross-entropy). ``callbacks`` run before the MLflow one, so
    the metrics they add are logged; ``run_name`` names the MLflow run and the checkpoint
    when the variant's label is not enough (``NetA1-HF`` where the label is ``hf`` in two
    groups)."""

    build: Callable[[], nn.Module]
    data: SplitData | Batches
    recipe: Recipe
    params: Mapping[str, Any]
    key: tuple[Any, ...] = ()
    tags: Mapping[str, str] | None = None
    augment: BatchTransform | None = None
    input_size: int | None = None
    callbacks: Sequence[Callback] = ()
    parameter_groups: Callable[[nn.Module], Iterable[dict[str, Any]]] | None = None
    # Search trials are not checkpointed: Optuna reruns a lost trial as a whole.
    checkpointed: bool = True
    run_name: str | None = None
    loss: nn.Module | None = None


def study_recipe(
    config: Mapping[str, Any], training: Mapping[str, Any], seed: int, **options: Any
) -> Recipe:
    """A variant's recipe: its ``training`` block and ``options`` on the study's device and
    performance settings."""
    return Recipe(
        **training,
        seed=seed,
        device=config["device"],
        performance=PerformanceOptions(**config["performance"]),
        **options,
    )


def test_evaluation(data: SplitData, recipe: Recipe) -> SplitEvaluation:
    """A callback scoring the test split after every epoch (``test_loss``,
    ``test_accuracy`` in the history), for a study that reports its curves on it."""
    batches = DeviceBatches(
        data.test.images,
        data.test.labels,
        batch_size=recipe.eval_batch_size,
        device=resolve_device(recipe.device),
        normalisation=data.normalisation,
    )
    return SplitEvaluation(batches, "test")


Describe = Callable[[TrainedModel], dict[str, Any]]
Figures = Callable[[TrainedModel, dict[str, Any]], Mapping[str, Figure]]


def train_variant(
    variant: Variant,
    job: Job,
    config: Mapping[str, Any],
    describe: Describe,
    *,
    metrics: Sequence[str] | Mapping[str, str] = ("test_accuracy", "test_loss", "train_seconds"),
    figures: Figures | None = None,
) -> tuple[dict[str, Any], nn.Module]:
    """Train (or resume, or reuse) ``variant`` in its own nested MLflow run.

    Returns the variant's summary row, ``describe(trained)`` plus the run id and the
    per-epoch history, and the trained network on the CPU. ``metrics`` are the row's
    values logged to the run (a mapping logs row key ``v`` under the name ``k``);
    ``figures`` are drawn and logged only when the run is live (a reused variant logged
    them when it finished).
    """
    use_threads(config["threads"])  # by load; train_model refines it for the model
    name = job.run_name or variant.label
    store = None
    if job.checkpointed:
        # The file is named by the label; the key (params hold the group) keeps two
        # groups' same-named variants apart, and the data's fingerprint two image sets of
        # one size (a batch source's study keys its files itself).
        key = job.key
        if isinstance(job.data, SplitData):
            key = (*key, data_fingerprint(job.data))
        store = checkpoint_store(variant.study, name, config, job.params, job.recipe, *key)
    logged = dict(metrics) if isinstance(metrics, Mapping) else {k: k for k in metrics}
    tags = {"study": variant.study, "variant": variant.name, **(job.tags or {})}
    with variant_run(store, name, job.params, tags) as run:
        trained = train_model(
            job.build,
            job.data,
            job.recipe,
            label=variant.path,
            augment=job.augment,
            input_size=job.input_size,
            extra_callbacks=[*job.callbacks, *run.callbacks],
            parameter_groups=job.parameter_groups,
            checkpoint=store,
            threads=config["threads"],
            loss=job.loss,
        )
        row = describe(trained)
        macro = {k: v for k, v in macro_metrics(trained, job.data).items() if k not in row}
        result = {
            **row,
            **macro,
            "mlflow_run_id": run.run_id,
            "history": history_records(trained),
            "test_labels": test_labels(trained, job.data),
        }
        if run.reused:
            logger.info("[%s] finished earlier: reused %s", variant.path, store.latest.name)
        elif run.logging:
            tracking.log_variant(
                {**{name: result[key] for name, key in logged.items()}, **macro},
                trained.performance,
                figures(trained, result) if figures is not None else {},
                status=result.get("status", "ok"),
                diverged_epoch=result.get("diverged_epoch"),
            )
        if job.checkpointed:  # a search trial's weights are not kept: it is rerun whole
            # Also for a reused variant: its run gets the weights if it has none yet.
            tracking.log_model(run.run_id, trained.model, model_inputs(job))
    logger.info("[%s] %s", variant.path, outcome_line(result, list(logged.values())))
    return result, trained.model.cpu()


def model_inputs(job: Job) -> dict[str, Any]:
    """What the trained network takes, logged beside its weights: the stored images'
    shape, then (in this order) ``x / 255``, normalised by the training split's mean and
    std, resized bilinearly to ``input_size`` when set; and the class of each output.
    A study feeding its own batches (a DataLoader) says only the shape."""
    data = job.data
    if not isinstance(data, SplitData):
        return {"in_shape": list(data.in_shape), "input_size": job.input_size}
    return {
        "in_shape": list(data.train.images.shape[1:]),
        "dtype": "uint8",
        "input_size": job.input_size,
        "normalisation": {
            "mean": list(data.normalisation.mean),
            "std": list(data.normalisation.std),
        },
        "class_names": list(data.train.class_names),
    }


def history_records(trained: TrainedModel) -> list[dict[str, Any]]:
    """The per-epoch history with its epoch number, as the summary's history table has it."""
    epochs = trained.history.epochs
    return [{**row, "epoch": epoch} for epoch, row in enumerate(epochs, start=1)]


def _class_names(data: SplitData | Batches, labels: dict[str, list[int]]) -> list[str]:
    if isinstance(data, SplitData):
        return list(data.train.class_names)
    seen = max(max(labels["true"], default=0), max(labels["predicted"], default=0))
    return [str(k) for k in range(seen + 1)]


def macro_metrics(trained: TrainedModel, data: SplitData | Batches) -> dict[str, float]:
    """Test-split metrics that weigh every class equally (balanced accuracy, macro
    precision, recall and F1), so an imbalanced image folder is judged fairly; none when
    the variant was not scored on a test split here."""
    labels = trained.test_labels
    if not labels.get("true"):
        return {}
    scores = classification_metrics(
        labels["true"], labels["predicted"], num_classes=len(_class_names(data, labels))
    )
    return {f"test_{k}": v for k, v in scores.items() if k != "accuracy"}


def test_labels(trained: TrainedModel, data: SplitData | Batches) -> dict[str, Any]:
    """The test split's true and predicted classes with the class names: what the study's
    confusion matrix is drawn from (not a summary column)."""
    labels = trained.test_labels
    return {**labels, "classes": _class_names(data, labels)} if labels.get("true") else {}


def outcome(trained: TrainedModel) -> dict[str, Any]:
    """The columns every study's summary shares: how training went and how it scored."""
    history = trained.history
    val_acc = history.column("val_accuracy") or [math.nan]
    return {
        "status": "diverged" if history.diverged else "ok",
        "diverged_epoch": history.diverged_epoch,
        "epochs_run": len(history.epochs),
        "best_val_accuracy": max(val_acc),
        "final_val_accuracy": val_acc[-1],
        "test_accuracy": trained.test.get("accuracy", math.nan),
        "test_loss": trained.test.get("loss", math.nan),
        "train_seconds": history.train_seconds,
        "precision": trained.performance.get("perf_precision"),
    }


def outcome_line(result: Mapping[str, Any], metrics: Sequence[str]) -> str:
    """``test accuracy 0.9120, test loss 0.3011 (ok, 12.3 s)``: the variant's log line."""
    shown = [k for k in metrics if k != "train_seconds" and _is_number(result.get(k))][:2]
    values = ", ".join(f"{k.replace('_', ' ')} {result[k]:.4f}" for k in shown)
    seconds = result.get("train_seconds")
    timing = f", {seconds:.1f} s" if _is_number(seconds) else ""
    return f"{values} ({result.get('status', 'ok')}{timing})"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def history_table(results: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> pd.DataFrame:
    """One long per-epoch table of every result's history, each row labelled with the
    result's ``keys`` (variant, seed, ...): the study's history dataset."""
    frames = [pd.DataFrame(r["history"]).assign(**{k: r[k] for k in keys}) for r in results]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
