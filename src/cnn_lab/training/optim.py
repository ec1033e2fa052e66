"""Optimizers and learning-rate schedules by name, as the parameter files spell them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("adam", "sgd", "adamw", "rmsprop")
SCHEDULERS = ("none", "step", "multistep", "exponential", "cosine")
INTERVALS = ("epoch", "iteration")


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
    total_steps: int | None = None,
    warmup_steps: int = 0,
    warmup_lr: float | None = None,
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A learning-rate schedule; ``none`` keeps the learning rate constant.

    Step sizes, milestones and ``total_steps`` (cosine) count whatever the caller steps
    the scheduler on: epochs by default, iterations when :func:`fit` is given
    ``scheduler_interval="iteration"`` (He et al.: /10 at 32k and 48k iterations). A
    warm-up runs the first ``warmup_steps`` at ``warmup_lr`` then returns to the schedule
    (He et al.'s ResNet-110: 0.01 for 400 iterations, then 0.1).
    """
    main = _main_scheduler(
        name,
        optimizer,
        total=total_steps or epochs,
        step_size=step_size,
        gamma=gamma,
        milestones=milestones,
    )
    if warmup_steps <= 0:
        return main
    if warmup_lr is None or warmup_lr <= 0:
        raise ValueError(f"warmup_steps={warmup_steps} needs a positive warmup_lr")
    base_lr = optimizer.param_groups[0]["lr"]
    warmup = torch.optim.lr_scheduler.ConstantLR(
        optimizer, factor=warmup_lr / base_lr, total_iters=warmup_steps
    )
    if main is None:
        return warmup
    return torch.optim.lr_scheduler.ChainedScheduler([warmup, main], optimizer=optimizer)


def _main_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    total: int,
    step_size: int,
    gamma: float,
    milestones: Iterable[int],
) -> torch.optim.lr_scheduler.LRScheduler | None:
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
        return sched.CosineAnnealingLR(optimizer, T_max=max(total, 1))
    raise ValueError(f"unknown scheduler {name!r}; allowed: {', '.join(SCHEDULERS)}")
