"""Scoring a network on batches: :func:`evaluate` (mean loss and accuracy) and
:func:`predict` (every logit), shared by the training engine and its callbacks, which is
why they live apart from :func:`~cnn_lab.training.engine.fit`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from cnn_lab.training import distributed
from cnn_lab.training.performance import Performance


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
        if len(targets) == 0:
            continue  # a rank's empty share of a last batch smaller than the process count
        with _autocast(performance):
            logits = model(inputs)
            loss = loss_fn(logits, targets).detach().float() * len(targets)
        correct = (logits.argmax(dim=1) == targets).sum()
        total_loss = loss if total_loss is None else total_loss + loss
        total_correct = correct if total_correct is None else total_correct + correct
        count += len(targets)
    model.train(was_training)
    if distributed.is_sharded(batches):  # torchrun: add up every rank's share
        total_loss, total_correct, count = distributed.reduce_sums(
            0.0 if total_loss is None else total_loss,
            0 if total_correct is None else total_correct,
            count,
            device=_device_of(model),
        )
    if count == 0:
        raise ValueError("cannot evaluate on an empty split")
    return {"loss": float(total_loss) / count, "accuracy": float(total_correct) / count}


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Logits and targets for every sample of ``batches``, on the CPU (under torchrun with
    sharded batches: every rank's shares gathered back into the single-process order)."""
    was_training = model.training
    model.eval()
    logits, targets = [], []
    for inputs, labels in batches:
        if len(labels) == 0:
            continue  # an empty share (torchrun): see _gather_shares
        logits.append(model(inputs).float().cpu())
        targets.append(labels.cpu())
    model.train(was_training)
    if distributed.is_sharded(batches):
        logits, targets = _gather_shares(logits, targets)
    return torch.cat(logits), torch.cat(targets)


def _gather_shares(
    logits: list[Tensor], targets: list[Tensor]
) -> tuple[list[Tensor], list[Tensor]]:
    """Batch by batch, rank 0's share, then rank 1's...: each batch's shares are contiguous
    slices in rank order, and only the last batch can leave a rank without a share."""
    shares = distributed.all_gather_object(list(zip(logits, targets, strict=True)))
    ordered = [
        part[index]
        for index in range(max(len(part) for part in shares))
        for part in shares
        if index < len(part)
    ]
    return [lg for lg, _ in ordered], [tg for _, tg in ordered]


def _autocast(performance: Performance | None) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext() if performance is None else performance.autocast()
