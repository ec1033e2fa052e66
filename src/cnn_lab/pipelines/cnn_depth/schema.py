"""The declared shape of ``params:cnn_depth``; anything else is an error before training."""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from cnn_lab.params import StrictModel, as_list
from cnn_lab.training.device import DEVICE_CHOICES
from cnn_lab.training.optim import OPTIMIZERS, SCHEDULERS

DATA_SOURCES = ("digits", "mnist")
DeviceName = Literal[DEVICE_CHOICES]  # type: ignore[valid-type]


class DataParams(StrictModel):
    source: Literal[DATA_SOURCES] = "digits"  # type: ignore[valid-type]
    root: str = "data/01_raw"
    download: bool = False
    val_ratio: float = Field(0.2, gt=0, lt=1)
    # Only for sources without an official test set (digits).
    test_ratio: float = Field(0.2, gt=0, lt=1)


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


class GroupParams(StrictModel):
    """Families trained at every depth of ``depths`` with the same model options."""

    families: Annotated[list[str], BeforeValidator(as_list)] = Field(min_length=1)
    depths: Annotated[list[Annotated[int, Field(ge=1)]], BeforeValidator(as_list)] = Field(
        min_length=1
    )
    model: dict[str, Any] = Field(default_factory=dict)

    @field_validator("families")
    @classmethod
    def _known_families(cls, families: list[str]) -> list[str]:
        from cnn_lab.models.registry import FAMILIES, _load_builtin_families

        _load_builtin_families()
        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown family {unknown}; allowed: {', '.join(sorted(FAMILIES))}")
        return families

    @model_validator(mode="after")
    def _model_options_fit_every_family(self) -> GroupParams:
        from cnn_lab.models.registry import FAMILIES

        for family in self.families:
            accepted = set(inspect.signature(FAMILIES[family]).parameters) - {
                "in_shape",
                "num_classes",
                "depth",
            }
            unknown = sorted(set(self.model) - accepted)
            if unknown:
                raise ValueError(
                    f"model option(s) {unknown} are not accepted by family '{family}'; "
                    f"allowed: {', '.join(sorted(accepted))}"
                )
        return self


class CnnDepthParams(StrictModel):
    seed: int = 0
    device: DeviceName = "auto"
    threads: int = Field(0, ge=0, description="CPU threads; 0 keeps torch's default")
    probe_batch_size: int = Field(256, ge=1)
    data: DataParams = DataParams()
    groups: dict[str, GroupParams] = Field(min_length=1)
    training: TrainingParams = TrainingParams()
