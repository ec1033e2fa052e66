"""The one training engine every study uses: :func:`fit` (scoring in :mod:`scoring`).

Losses and accuracies accumulate on the device and are read once per epoch, so the hot
loop has no per-step host synchronisation.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from cnn_lab.training import distributed
from cnn_lab.training.callbacks import Callback, EpochState
from cnn_lab.training.checkpoint import EpochCheckpoint, TrainingState
from cnn_lab.training.performance import Performance
from cnn_lab.training.scoring import _autocast, _device_of, evaluate


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
    sync_batch_norm: bool = True,
) -> History:
    """Train ``model`` for up to ``epochs`` epochs; stop early on a non-finite loss
    (recorded as divergence) or when a callback asks.

    ``scheduler_interval="iteration"`` steps the scheduler after every optimizer step
    (iteration-based recipes such as He et al.'s) instead of once per epoch;
    ``max_steps`` ends training after that many optimizer steps (the epoch in progress
    is cut short, then validated as usual). ``performance`` runs forward and loss under
    its autocast (fp16 with a GradScaler); ``None`` is plain fp32.
    ``checkpoint`` resumes after the last saved epoch and saves each finished epoch.

    Under torchrun the steps run through DistributedDataParallel (training/distributed.py)
    on this rank's shares of ``train`` (``DeviceBatches(shard=True)``, ``LoaderBatches``):
    each share's loss is weighted by its part of the global batch, losses and metrics are
    added across ranks and rank 0's epoch record goes to all, so every rank returns the same
    history. ``sync_batch_norm``: on CUDA, BatchNorm statistics over the global batch.
    """
    if scheduler_interval not in ("epoch", "iteration"):
        raise ValueError(
            f"scheduler_interval must be 'epoch' or 'iteration', got {scheduler_interval!r}"
        )
    per_step = scheduler is not None and scheduler_interval == "iteration"
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    scaler = performance.make_scaler() if performance is not None else None
    spread = distributed.is_distributed()  # torchrun: one shard of every batch per rank
    if isinstance(model, DistributedDataParallel):
        model = model.module  # wrapped here, for the length of this fit
    history = History()
    first_epoch = 1
    for cb in callbacks:
        cb.on_train_start(model, epochs)
    # Resume after the last complete epoch.
    if checkpoint is not None:
        live = TrainingState(model, optimizer, scheduler, history, callbacks, scaler)
        restored = checkpoint.restore(live)
        first_epoch = restored + 1
        if history.stopped_epoch is not None or history.diverged:
            first_epoch = epochs + 1  # that run had ended; nothing left to train
    steps, seconds_before = history.steps, history.train_seconds
    state: EpochState | None = None
    with contextlib.ExitStack() as stack:
        train_module = (
            stack.enter_context(_data_parallel(model, sync_batch_norm)) if spread else model
        )
        device = _device_of(model)
        started = time.perf_counter()
        model.train()
        for epoch in range(first_epoch, epochs + 1):
            epoch_start = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            running = torch.zeros((), device=device)
            seen = epoch_steps = 0
            for inputs, targets in train:
                optimizer.zero_grad(set_to_none=True)
                # Autocast around forward and loss; fp16 also scales the loss.
                with _autocast(performance):
                    outputs = train_module(inputs)
                    # An empty share (last batch smaller than the process count) still
                    # steps, with zero gradients, so every rank's DDP stays in lockstep.
                    loss = loss_fn(outputs, targets) if len(targets) else outputs.sum() * 0.0
                objective = loss * distributed.batch_share(len(targets), device) if spread else loss
                if scaler is None:
                    objective.backward()
                    optimizer.step()
                else:
                    scaler.scale(objective).backward()
                    scaler.step(optimizer)
                    scaler.update()
                if per_step:
                    scheduler.step()
                running += loss.detach() * len(targets)
                seen += len(targets)
                steps += 1
                epoch_steps += 1
                if max_steps is not None and steps >= max_steps:
                    break
            if spread:  # every rank's loss sum and sample count; rank 0's BatchNorm statistics
                total, count = distributed.reduce_sums(running, seen, device=device)
                train_loss = total / max(count, 1)
                distributed.broadcast_buffers(model)
            else:
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
            if spread:  # rank 0's timings, so the row is the same on every rank
                metrics = distributed.broadcast_object(metrics)
            state = EpochState(model, optimizer, epoch, epochs, metrics)
            if not math.isfinite(metrics["train_loss"]):
                history.diverged_epoch = epoch
                history.epochs.append(metrics)
                break
            for cb in callbacks:
                cb.on_epoch_end(state)
            if spread:  # probes and stop decisions as rank 0 saw them
                state.metrics, state.stop = distributed.broadcast_object(
                    (state.metrics, state.stop)
                )
            history.epochs.append(state.metrics)
            stop = state.stop or (max_steps is not None and steps >= max_steps)
            if stop:
                history.stopped_epoch = epoch
            if checkpoint is not None:  # -- checkpoint: save the epoch just finished --
                history.steps = steps
                history.train_seconds = seconds_before + time.perf_counter() - started
                checkpoint.save(epoch, live)
            if stop:
                break
        history.train_seconds = seconds_before + time.perf_counter() - started
        history.steps = steps
        for cb in callbacks:
            cb.on_train_end(state)
    return history


@contextlib.contextmanager
def _data_parallel(model: nn.Module, sync_batch_norm: bool) -> Iterator[nn.Module]:
    """``model`` under DistributedDataParallel; a compiled model is compiled again around
    the wrapper (the order torch.compile supports for DDP's bucketed gradient sync)."""
    base = getattr(model, "_orig_mod", model)
    with distributed.data_parallel(base, sync_batch_norm=sync_batch_norm) as wrapped:
        yield torch.compile(wrapped) if base is not model else wrapped
