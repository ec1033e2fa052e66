"""Optimizers and learning-rate schedules by name, as the parameter files spell them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("adam", "sgd", "adamw", "rmsprop")
SCHEDULERS = ("none", "step", "multistep", "exponential", "cosine")


def build_optimizer(
    name: str,
    params: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")


def build_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    step_size: int = 10,
    gamma: float = 0.1,
    milestones: Iterable[int] = (),
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A per-epoch schedule; ``none`` keeps the learning rate constant."""
    sched = torch.optim.lr_scheduler
    if name == "none":
        return None
    if name == "step":
        return sched.StepLR(optimizer, step_size=step_size, gamma=gamma)
    if name == "multistep":
        return sched.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)
    if name == "exponential":
        return sched.ExponentialLR(optimizer, gamma=gamma)
    if name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    raise ValueError(f"unknown scheduler {name!r}; allowed: {', '.join(SCHEDULERS)}")
