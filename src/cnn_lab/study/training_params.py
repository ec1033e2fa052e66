"""The parameter schemas every study shares: the ``training`` block's optimisation
knobs, and the run options (checkpoints, performance) of the study's top level.

Studies subclass these to change a default or add their own keys, so a learning rate or a
precision is validated the same way everywhere.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from cnn_lab.evaluation.claims import Claims
from cnn_lab.study.params import ParameterError, Seeds, StrictModel, as_list, key_error
from cnn_lab.training.device import DEVICE_CHOICES
from cnn_lab.training.optim import INTERVALS, OPTIMIZERS, SCHEDULERS
from cnn_lab.training.performance import PRECISIONS, SWITCHES
from cnn_lab.training.threads import check_threads

# A study's ``threads``: auto (by model size and machine load, training/threads.py), 0
# (torch's default: one thread per core) or a count.
Threads = Annotated[int | str, BeforeValidator(check_threads)]


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


class IterationTrainingParams(TrainingParams):
    """The ``training`` block of studies that also run iteration-based recipes (depth,
    initialisation): step the scheduler per batch, milestones and step_size then count
    iterations; warm-up at warmup_lr for warmup_steps; stop at max_steps."""

    scheduler_interval: Literal[INTERVALS] = "epoch"  # type: ignore[valid-type]
    milestones: Annotated[list[Annotated[int, Field(ge=1)]], BeforeValidator(as_list)] = []
    warmup_steps: int = Field(0, ge=0)
    warmup_lr: float | None = Field(None, gt=0)
    max_steps: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> IterationTrainingParams:
        if self.scheduler == "multistep" and not self.milestones:
            raise key_error(
                "milestones", "required by scheduler 'multistep': a non-empty list of epochs"
            )
        if self.warmup_steps and self.warmup_lr is None:
            raise key_error(
                "warmup_lr", "required by warmup_steps={steps}", steps=self.warmup_steps
            )
        return self


def _switch(value: Any) -> Any:
    """YAML reads a bare on/off as a boolean: take it as the switch it was meant as."""
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


Switch = Annotated[Literal[SWITCHES], BeforeValidator(_switch)]  # type: ignore[valid-type]


class PerformanceParams(StrictModel):
    """Speed knobs (docs/performance.md); ``auto`` resolves against the device used and
    the choice that ran is logged to MLflow as ``perf_*`` params of each variant."""

    # auto: bf16 where the hardware runs it fast (CUDA with bf16, CPU with AVX-512 BF16
    # or AMX), else fp32. fp16 (CUDA only) trains with gradient scaling.
    precision: Literal[PRECISIONS] = "auto"  # type: ignore[valid-type]
    # auto: on for CNNs on CPU and CUDA (oneDNN and cuDNN both run NHWC convs faster).
    channels_last: Switch = "auto"
    compile: Switch = "off"
    cudnn_benchmark: Switch = "auto"
    # glibc keeps large freed blocks (mallopt); a no-op off Linux/glibc.
    allocator: bool = True


class CheckpointedRunParams(StrictModel):
    """What every study's top level shares about how its variants run: per-epoch
    checkpoints (docs/resume.md) and speed options (docs/performance.md)."""

    # A rerun resumes unfinished variants and reuses finished ones; false starts afresh.
    resume: bool = True
    # None: data/06_models/checkpoints/<study>
    checkpoint_dir: str | None = Field(None, min_length=1)
    performance: PerformanceParams = PerformanceParams()


class StudyRunParams(CheckpointedRunParams):
    """The top-level keys every study has: its seed, the training seeds, the device, the
    threads and the lab's claims, besides checkpoints and performance."""

    seed: int = 0
    seeds: Seeds = None  # every variant once per seed: mean and std across seeds in the report
    device: Literal[DEVICE_CHOICES] = "auto"  # type: ignore[valid-type]
    threads: Threads = "auto"  # auto: by model size and load; 0: torch's default; or a count
    claims: Claims = Field(default_factory=dict)  # the lab's claims: docs/claims.md


def check_precision(config: dict[str, Any], study: str) -> None:
    """fp16 needs CUDA's gradient scaling: say so before anything is read or trained."""
    import torch

    device = config.get("device", "auto")
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if config["performance"]["precision"] == "fp16" and not cuda:
        raise ParameterError(
            f"{study}.performance.precision: 'fp16' needs device cuda (gradient scaling), "
            f"but {study}.device is {device!r}; use bf16 or fp32"
        )
