"""Train one model: the steps every study variant shares.

Studies describe *what* to train (a model factory, a batch source, a recipe, a loss); this
module turns that into batches (device-resident ones for an in-memory split, or the
study's own, e.g. DataLoader-fed), an optimizer, a schedule and callbacks for :func:`fit`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cnn_lab.data.sources import DatasetBundle, LabelledImages
from cnn_lab.training.batching import BatchTransform, DeviceBatches, Normalisation
from cnn_lab.training.callbacks import Callback, GradientNormProbe, ProgressLog
from cnn_lab.training.checkpoint import (
    Checkpoint,
    CheckpointStore,
    EpochCheckpoint,
    load_callback_states,
    record_finished,
    restore_history,
)
from cnn_lab.training.device import resolve_device, seed_everything
from cnn_lab.training.engine import History, fit
from cnn_lab.training.optim import build_optimizer, build_scheduler
from cnn_lab.training.performance import Performance, PerformanceOptions, set_up_model
from cnn_lab.training.scoring import evaluate, predict
from cnn_lab.training.threads import use_threads

# A Recipe built without a performance block (library callers, tests, benchmarks) trains in
# fp32 with the default layout; every study passes its own validated block instead.
PLAIN = PerformanceOptions(precision="fp32", channels_last="off", cudnn_benchmark="off")


@dataclass(frozen=True)
class Recipe:
    """How to train: the knobs a study's ``training`` parameter block sets."""

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: str = "step"
    step_size: int = 10
    gamma: float = 0.5
    # Iteration-based recipes (He et al.): scheduler stepped per batch, milestones in
    # iterations, a warm-up and a stop after ``max_steps`` optimizer steps.
    scheduler_interval: str = "epoch"
    milestones: tuple[int, ...] = ()
    warmup_steps: int = 0
    warmup_lr: float | None = None
    max_steps: int | None = None
    eval_batch_size: int = 512
    seed: int = 0
    device: str = "auto"
    probe_batch_size: int = 256
    # Per-layer gradient norms each epoch; off for studies that freeze layers or skip them.
    probe_gradients: bool = True
    # Precision, channels_last, compile, cuDNN autotuning, allocator (training/performance.py).
    performance: PerformanceOptions = PLAIN


@dataclass
class SplitData:
    """The three splits of one dataset as arrays, with training-split normalisation.

    ``test`` is ``None`` when a study keeps its test set away from training nodes and
    scores it later, in one place.
    """

    train: LabelledImages
    val: LabelledImages
    test: LabelledImages | None
    normalisation: Normalisation

    @classmethod
    def from_bundle(cls, bundle: DatasetBundle, split: dict[str, Any]) -> SplitData:
        pool = bundle.train

        def take(indices: list[int]) -> LabelledImages:
            index = np.asarray(indices, dtype=np.int64)
            return LabelledImages(pool.images[index], pool.labels[index], pool.class_names)

        if split["num_samples"] != len(pool):
            raise ValueError(
                f"the saved split was made for {split['num_samples']} samples but the dataset "
                f"'{bundle.name}' has {len(pool)}: rerun the split_dataset node"
            )
        if split["test"] == "official":
            if bundle.test is None:
                raise ValueError(f"split expects an official test set but '{bundle.name}' has none")
            test = bundle.test
        else:
            test = take(split["test"])
        train = take(split["train"])
        return cls(train, take(split["val"]), test, Normalisation.from_uint8(train.images))


@dataclass
class Batches:
    """Ready-made batches of ``(inputs, targets)`` on the recipe's device, for data that
    does not fit in memory (e.g. :class:`~cnn_lab.training.loader.LoaderBatches`).

    ``in_shape`` is one input's shape (for the thread choice). Batches with a
    ``memory_format`` attribute are switched to the model's layout. ``train`` needs a
    ``generator`` (its shuffling and augmentation state, saved with every checkpoint) when
    training is checkpointed. ``test`` is ``None`` when the study scores it itself.
    """

    train: Iterable[tuple[Tensor, Tensor]]
    val: Iterable[tuple[Tensor, Tensor]]
    test: Iterable[tuple[Tensor, Tensor]] | None
    in_shape: tuple[int, ...]

    def laid_out(self, memory_format: torch.memory_format | None) -> Batches:
        for part in (self.train, self.val, self.test):
            if hasattr(part, "memory_format"):
                part.memory_format = memory_format
        return self


@dataclass
class TrainedModel:
    model: nn.Module
    history: History
    test: dict[str, float]
    gradient_norms: dict[int, list[float]] = field(default_factory=dict)
    # The resolved performance choices (MLflow params: what ran, not what was asked).
    performance: dict[str, Any] = field(default_factory=dict)
    # Every test sample's true and predicted class: what macro metrics are computed from.
    test_labels: dict[str, list[int]] = field(default_factory=dict)


def train_model(
    build: Callable[[], nn.Module],
    data: SplitData | Batches,
    recipe: Recipe,
    *,
    label: str,
    augment: BatchTransform | None = None,
    input_size: int | None = None,
    extra_callbacks: Sequence[Callback] = (),
    parameter_groups: Callable[[nn.Module], Iterable[dict[str, Any]]] | None = None,
    checkpoint: CheckpointStore | None = None,
    threads: int | str | None = None,
    loss: nn.Module | None = None,
) -> TrainedModel:
    """Seed, build, train with validation each epoch, then score once on the test split
    (unless ``data.test`` is ``None``: then ``test`` is empty).

    ``data``: an in-memory :class:`SplitData` (batched on the device here, ``augment``
    applied to training batches, every split resized to ``input_size``) or ready-made
    :class:`Batches` (augmented and sized by the study). ``loss``: the criterion, also of
    the validation and test loss (default cross-entropy). ``parameter_groups``: the
    optimizer groups of the built model (default: every parameter at ``recipe.lr``).
    ``checkpoint``: saved every epoch and resumed from; a finished variant is reused, not
    trained again. ``threads``: the study's setting (``"auto"``: chosen for this model and
    the machine's load; 0: torch's default; None: leave torch alone), not part of the
    recipe because it changes speed, not what is trained.
    """
    ready = isinstance(data, Batches)
    if ready and (augment is not None or input_size is not None or recipe.probe_gradients):
        raise ValueError(
            f"{label}: ready-made batches come augmented and sized; augment, input_size "
            "and probe_gradients apply to an in-memory SplitData only"
        )
    device = resolve_device(recipe.device)
    seed_everything(recipe.seed)
    model = build().to(device)
    criterion = (loss if loss is not None else nn.CrossEntropyLoss()).to(device)
    shape = data.in_shape if ready else tuple(data.train.images.shape[1:])
    if input_size is not None:
        shape = (shape[0], input_size, input_size)
    chosen = _threads(threads, model, device, shape, recipe.batch_size)
    performance, model, trained_module = set_up_model(recipe.performance, model, device)
    if checkpoint is not None and (done := checkpoint.load()) is not None and done.finished:
        return _reuse(model, done, {**performance.as_params(), **chosen}, extra_callbacks)
    if ready:
        source, probe = data.laid_out(performance.memory_format), None
    else:
        batching = _Batching(data, recipe, device, augment, input_size, performance)
        source, probe = batching.train_and_val(), batching.probe()

    optimizer, scheduler = _optimizer(model, recipe, parameter_groups)
    history = fit(
        trained_module,
        source.train,
        optimizer=optimizer,
        epochs=recipe.epochs,
        val=source.val,
        scheduler=scheduler,
        loss_fn=criterion,
        callbacks=[*([probe] if probe else []), ProgressLog(label), *extra_callbacks],
        scheduler_interval=recipe.scheduler_interval,
        max_steps=recipe.max_steps,
        checkpoint=EpochCheckpoint(checkpoint, {"batches": source.train.generator})
        if checkpoint is not None
        else None,
        performance=performance,
    )
    scores, labels = {}, {}
    test = source.test if ready else batching.test()  # batched only now: device memory
    if test is not None:
        scores = evaluate(trained_module, test, criterion, performance=performance)
        labels = _test_labels(trained_module, test, performance)
    if checkpoint is not None:
        record_finished(checkpoint, model, history, scores, extra_callbacks, labels)
    norms = _gradient_norms(history) if probe else {}
    chosen = {**performance.as_params(), **chosen}
    return TrainedModel(model, history, scores, norms, chosen, labels)


def _test_labels(
    model: nn.Module, test: Iterable[tuple[Tensor, Tensor]], performance: Performance
) -> dict[str, list[int]]:
    with performance.autocast():
        logits, targets = predict(model, test)
    return {"true": targets.tolist(), "predicted": logits.argmax(dim=1).tolist()}


def _threads(
    threads: int | str | None,
    model: nn.Module,
    device: torch.device,
    shape: tuple[int, ...],
    batch_size: int,
) -> dict[str, Any]:
    """The thread count chosen for this model (MLflow params); None leaves torch alone."""
    if threads is None:
        return {}
    chosen = use_threads(threads, model, device=device, in_shape=shape, batch_size=batch_size)
    return chosen.as_params()


@dataclass
class _Batching:
    """An in-memory split batched on the device: the training batches shuffled (and
    augmented) with the recipe's seed, every split resized to ``input_size`` and laid out
    as the model is."""

    data: SplitData
    recipe: Recipe
    device: torch.device
    augment: BatchTransform | None
    input_size: int | None
    performance: Performance

    def batches(
        self, part: LabelledImages, size: int, shuffle: bool = False, shard: bool = True
    ) -> DeviceBatches:
        return DeviceBatches(
            part.images,
            part.labels,
            batch_size=size,
            device=self.device,
            normalisation=self.data.normalisation,
            shuffle=shuffle,
            seed=self.recipe.seed,
            augment=self.augment if shuffle else None,
            input_size=self.input_size,
            memory_format=self.performance.memory_format,
            shard=shard,  # torchrun: each rank its share of every batch
        )

    def train_and_val(self) -> Batches:
        data, recipe = self.data, self.recipe
        return Batches(
            self.batches(data.train, recipe.batch_size, shuffle=True),
            self.batches(data.val, recipe.eval_batch_size),
            None,
            tuple(data.train.images.shape[1:]),
        )

    def test(self) -> DeviceBatches | None:
        if self.data.test is None:
            return None
        return self.batches(self.data.test, self.recipe.eval_batch_size)

    def probe(self) -> GradientNormProbe | None:
        """Per-layer gradient norms each epoch, on one fixed batch of the training split
        (the same on every rank: it is not sharded)."""
        if not self.recipe.probe_gradients:
            return None
        batches = self.batches(self.data.train, self.recipe.probe_batch_size, shard=False)
        return GradientNormProbe(*next(iter(batches)))


def _optimizer(
    model: nn.Module,
    recipe: Recipe,
    parameter_groups: Callable[[nn.Module], Iterable[dict[str, Any]]] | None,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """The recipe's optimizer over ``parameter_groups(model)`` (default: every parameter
    at ``recipe.lr``) and its learning-rate schedule."""
    optimizer = build_optimizer(
        recipe.optimizer,
        model.parameters() if parameter_groups is None else parameter_groups(model),
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        momentum=recipe.momentum,
    )
    scheduler = build_scheduler(
        recipe.scheduler,
        optimizer,
        epochs=recipe.epochs,
        step_size=recipe.step_size,
        gamma=recipe.gamma,
        milestones=recipe.milestones,
        total_steps=recipe.max_steps if recipe.scheduler_interval == "iteration" else None,
        warmup_steps=recipe.warmup_steps,
        warmup_lr=recipe.warmup_lr,
    )
    return optimizer, scheduler


def _gradient_norms(history: History) -> dict[int, list[float]]:
    """Per-epoch layer norms from the history (complete across a resume, unlike the probe)."""
    return {
        epoch: [row[k] for k in sorted(row) if k.startswith("grad_norm_")]
        for epoch, row in enumerate(history.epochs, start=1)
        if any(k.startswith("grad_norm_") for k in row)
    }


def _reuse(
    model: nn.Module, done: Checkpoint, performance: dict[str, Any], callbacks: Sequence[Callback]
) -> TrainedModel:
    model.load_state_dict(done.model)
    load_callback_states(callbacks, done.extra.get("callbacks", {}))
    history = History()
    restore_history(done, history)
    probed = any(k.startswith("grad_norm_") for row in history.epochs for k in row)
    norms = _gradient_norms(history) if probed else {}
    test, labels = dict(done.extra.get("test", {})), dict(done.extra.get("test_labels", {}))
    return TrainedModel(model, history, test, norms, performance, labels)
