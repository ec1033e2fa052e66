"""The one training engine every study uses: :func:`fit` and :func:`evaluate`.

Losses and accuracies accumulate on the device and are read once per epoch, so the hot
loop has no per-step host synchronisation.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from cnn_lab.training.callbacks import Callback, EpochState
from cnn_lab.training.performance import Performance

if TYPE_CHECKING:
    from cnn_lab.training.checkpoint import EpochCheckpoint


@dataclass
class History:
    """Per-epoch metrics plus how training ended."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    diverged_epoch: int | None = None
    stopped_epoch: int | None = None
    train_seconds: float = 0.0
    steps: int = 0  # optimizer steps taken

    @property
    def diverged(self) -> bool:
        return self.diverged_epoch is not None

    def column(self, key: str) -> list[float]:
        return [row[key] for row in self.epochs if key in row]


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    loss_fn: nn.Module | None = None,
    performance: Performance | None = None,
) -> dict[str, float]:
    """Mean loss and accuracy over ``batches``, in eval mode (under the training run's
    autocast when ``performance`` is given, so validation sees what training saw)."""
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    was_training = model.training
    model.eval()
    total_loss = total_correct = None
    count = 0
    for inputs, targets in batches:
        with _autocast(performance):
            logits = model(inputs)
            loss = loss_fn(logits, targets).detach().float() * len(targets)
        correct = (logits.argmax(dim=1) == targets).sum()
        total_loss = loss if total_loss is None else total_loss + loss
        total_correct = correct if total_correct is None else total_correct + correct
        count += len(targets)
    model.train(was_training)
    if count == 0:
        raise ValueError("cannot evaluate on an empty split")
    return {"loss": float(total_loss) / count, "accuracy": float(total_correct) / count}


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Logits and targets for every sample of ``batches``, on the CPU."""
    was_training = model.training
    model.eval()
    logits, targets = [], []
    for inputs, labels in batches:
        logits.append(model(inputs).float().cpu())
        targets.append(labels.cpu())
    model.train(was_training)
    return torch.cat(logits), torch.cat(targets)


def _autocast(performance: Performance | None) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext() if performance is None else performance.autocast()


def fit(
    model: nn.Module,
    train: Iterable[tuple[Tensor, Tensor]],
    *,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    val: Iterable[tuple[Tensor, Tensor]] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    loss_fn: nn.Module | None = None,
    callbacks: Sequence[Callback] = (),
    scheduler_interval: str = "epoch",
    max_steps: int | None = None,
    checkpoint: EpochCheckpoint | None = None,
    performance: Performance | None = None,
) -> History:
    """Train ``model`` for up to ``epochs`` epochs; stop early on a non-finite loss
    (recorded as divergence) or when a callback asks.

    ``scheduler_interval="iteration"`` steps the scheduler after every optimizer step
    (iteration-based recipes such as He et al.'s) instead of once per epoch;
    ``max_steps`` ends training after that many optimizer steps (the epoch in progress
    is cut short, then validated as usual). ``performance`` runs forward and loss under
    its autocast (fp16 with a GradScaler); ``None`` is plain fp32.
    ``checkpoint`` resumes after the last saved epoch and saves each finished epoch.
    """
    if scheduler_interval not in ("epoch", "iteration"):
        raise ValueError(
            f"scheduler_interval must be 'epoch' or 'iteration', got {scheduler_interval!r}"
        )
    per_step = scheduler is not None and scheduler_interval == "iteration"
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    scaler = performance.make_scaler() if performance is not None else None
    history = History()
    first_epoch = 1
    for cb in callbacks:
        cb.on_train_start(model, epochs)
    # -- checkpoint: resume after the last complete epoch (issue 8) --
    if checkpoint is not None:
        first_epoch = checkpoint.restore(model, optimizer, scheduler, history, callbacks) + 1
        if history.stopped_epoch is not None or history.diverged:
            first_epoch = epochs + 1  # that run had ended; nothing left to train
    steps, seconds_before = history.steps, history.train_seconds
    state: EpochState | None = None
    started = time.perf_counter()
    model.train()
    for epoch in range(first_epoch, epochs + 1):
        epoch_start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        running = torch.zeros((), device=_device_of(model))
        seen = epoch_steps = 0
        for inputs, targets in train:
            optimizer.zero_grad(set_to_none=True)
            # --- precision (issue 11): autocast around forward + loss, fp16 scaling ---
            with _autocast(performance):
                loss = loss_fn(model(inputs), targets)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            # --- end precision ---
            if per_step:
                scheduler.step()
            running += loss.detach() * len(targets)
            seen += len(targets)
            steps += 1
            epoch_steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        train_loss = float(running) / max(seen, 1)  # reading it waits for the device
        # Optimisation alone (no validation, no callbacks): what a frozen layer speeds up.
        train_time = time.perf_counter() - epoch_start
        if scheduler is not None and not per_step:
            scheduler.step()
        metrics: dict[str, float] = {
            "train_loss": train_loss,
            "lr": lr,
            "train_time": train_time,
            "batch_time": train_time / max(epoch_steps, 1),
        }
        if val is not None:
            scores = evaluate(model, val, loss_fn, performance)
            metrics["val_loss"], metrics["val_accuracy"] = scores["loss"], scores["accuracy"]
        metrics["epoch_time"] = time.perf_counter() - epoch_start
        state = EpochState(model, optimizer, epoch, epochs, metrics)
        if not math.isfinite(metrics["train_loss"]):
            history.diverged_epoch = epoch
            history.epochs.append(metrics)
            break
        for cb in callbacks:
            cb.on_epoch_end(state)
        history.epochs.append(state.metrics)
        stop = state.stop or (max_steps is not None and steps >= max_steps)
        if stop:
            history.stopped_epoch = epoch
        if checkpoint is not None:  # -- checkpoint: save the epoch just finished --
            history.steps = steps
            history.train_seconds = seconds_before + time.perf_counter() - started
            checkpoint.save(epoch, model, optimizer, scheduler, history, callbacks)
        if stop:
            break
    history.train_seconds = seconds_before + time.perf_counter() - started
    history.steps = steps
    for cb in callbacks:
        cb.on_train_end(state)
    return history
