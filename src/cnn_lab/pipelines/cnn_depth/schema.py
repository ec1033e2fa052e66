"""The declared shape of ``params:cnn_depth``; anything else is an error before training."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cnn_lab.study.params import StrictModel, as_list, unknown_option
from cnn_lab.study.training_params import IterationTrainingParams, StudyRunParams

DATA_SOURCES = ("digits", "mnist", "cifar10", "image_folder")


class ImageFolderParams(StrictModel):
    """``data.source: image_folder`` reads ``data.root/<class>/<image>``."""

    size: int = Field(32, ge=1, description="every image is resized to size x size when read")
    on_unreadable: Literal["stop", "skip"] = "stop"
    # auto: 1 channel when every image is greyscale (MNIST-like folders), else RGB
    channels: Literal["auto", 1, 3] = "auto"


class AugmentParams(StrictModel):
    """Training-batch augmentation on the device (He et al.: crop_padding 4, flip true)."""

    crop_padding: int = Field(0, ge=0)
    flip: bool = False


class DataParams(StrictModel):
    source: Literal[DATA_SOURCES] = "digits"  # type: ignore[valid-type]
    root: str = "data/01_raw"
    download: bool = False
    val_ratio: float = Field(0.2, gt=0, lt=1)
    # Only for sources without an official test set (digits, image folders).
    test_ratio: float = Field(0.2, gt=0, lt=1)
    # Model input size: batches are resized on the device (digits 8 -> 16, CIFAR 32 -> 128).
    image_size: int | None = Field(None, ge=1)
    image_folder: ImageFolderParams = ImageFolderParams()
    augment: AugmentParams = AugmentParams()


class GroupParams(StrictModel):
    """Families trained at every depth of ``depths`` with the same model options."""

    families: Annotated[list[str], BeforeValidator(as_list)] = Field(min_length=1)
    depths: Annotated[list[Annotated[int, Field(ge=1)]], BeforeValidator(as_list)] = Field(
        min_length=1
    )
    model: dict[str, Any] = Field(default_factory=dict)
    # Keys of ``training`` that differ for this group (e.g. CNNs train fewer epochs); the
    # rest is completed from the top-level ``training`` block before validation.
    training: IterationTrainingParams = IterationTrainingParams()
    enabled: bool = True  # lets an env switch off a group that conf/base defines
    # This group's input size; null takes data.image_size (CNNs on digits use 16x16).
    image_size: int | None = Field(None, ge=1)

    @field_validator("families")
    @classmethod
    def _known_families(cls, families: list[str]) -> list[str]:
        from cnn_lab.models.registry import FAMILIES

        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown family {unknown}; allowed: {', '.join(sorted(FAMILIES))}")
        return families

    @field_validator("model")
    @classmethod
    def _options_fit_every_family(cls, model: dict[str, Any], info: ValidationInfo) -> dict:
        from cnn_lab.models.registry import family_options

        for family in info.data.get("families") or []:
            accepted = family_options(family) - {"depth"}
            unknown = sorted(set(model) - accepted)
            if unknown:
                raise unknown_option(unknown[0], f"family '{family}'", accepted)
        return model


class CnnDepthParams(StudyRunParams):
    seed: int = Field(0, description="the data split's seed, and the training seed without seeds")
    probe_batch_size: int = Field(256, ge=1)
    data: DataParams = DataParams()
    groups: dict[str, GroupParams] = Field(min_length=1)
    training: IterationTrainingParams = IterationTrainingParams()

    @model_validator(mode="before")
    @classmethod
    def _complete_group_training(cls, raw: Any) -> Any:
        """Each group's ``training`` = the top-level block with the group's keys on top, so
        errors name the group key (``groups.cnn.training.epochs``). A broken top-level
        block is reported once, at its own path, not again under every group."""
        if not isinstance(raw, dict) or not isinstance(raw.get("groups"), dict):
            return raw
        top = raw.get("training") or {}
        try:
            IterationTrainingParams.model_validate(top)
        except ValidationError:
            top = {}
        groups = {
            name: {**spec, "training": {**top, **(spec.get("training") or {})}}
            if isinstance(spec, dict) and isinstance(spec.get("training") or {}, dict)
            else spec
            for name, spec in raw["groups"].items()
        }
        return {**raw, "groups": groups}

    @field_validator("groups")
    @classmethod
    def _some_group_enabled(cls, groups: dict[str, GroupParams]) -> dict[str, GroupParams]:
        if not any(group.enabled for group in groups.values()):
            raise ValueError("every group has enabled: false; nothing would be trained")
        return groups
