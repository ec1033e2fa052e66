"""The optimisation knobs every study's ``training`` parameter block shares.

Studies subclass :class:`TrainingParams` to change a default or add their own keys, so a
learning rate or a batch size is validated the same way everywhere.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cnn_lab.params import StrictModel
from cnn_lab.training.optim import OPTIMIZERS, SCHEDULERS


class TrainingParams(StrictModel):
    optimizer: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    epochs: int = Field(20, ge=1)
    scheduler: Literal[SCHEDULERS] = "step"  # type: ignore[valid-type]
    step_size: int = Field(10, ge=1)
    gamma: float = Field(0.5, gt=0, le=1)
