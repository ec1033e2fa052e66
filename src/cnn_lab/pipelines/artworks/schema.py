"""The declared shape of ``params:artworks``; anything else is an error before training."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from cnn_lab.models.resnet_variants import VARIANTS
from cnn_lab.study.params import StrictModel, as_list
from cnn_lab.study.training_params import StudyRunParams
from cnn_lab.training.optim import OPTIMIZERS, SCHEDULERS

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101")


class DataParams(StrictModel):
    root: str = "data/01_raw/artworks"
    csv: str = "artists.csv"
    images: str = "images/images"  # relative to root, as the Kaggle zip unpacks
    exclude_artists: Annotated[list[str], BeforeValidator(as_list)] = Field(default_factory=list)
    image_size: int = Field(224, ge=16, le=1024)
    cache: bool = True  # decode + resize once into a uint8 .npy reused by later runs
    cache_dir: str = "data/02_intermediate/artworks/cache"
    workers: int = Field(4, ge=0, le=64)  # DataLoader worker processes and decode threads
    val_ratio: float = Field(0.1, gt=0, lt=1)  # shares of all images
    test_ratio: float = Field(0.1, gt=0, lt=1)
    min_images_per_class: int = Field(10, ge=3)

    @model_validator(mode="after")
    def _ratios_leave_a_training_split(self) -> DataParams:
        if self.val_ratio + self.test_ratio >= 0.9:
            raise ValueError(
                f"val_ratio + test_ratio = {self.val_ratio + self.test_ratio:g} leaves under "
                f"10% for training; keep the sum below 0.9"
            )
        return self


class AugmentParams(StrictModel):
    rotate90: bool = True
    hflip: bool = False
    vflip: bool = False
    random_resized_crop: bool = False
    crop_scale: tuple[float, float] = (0.5, 1.0)

    @model_validator(mode="after")
    def _scale_is_an_interval(self) -> AugmentParams:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        return self


class ModelParams(StrictModel):
    arch: Literal[ARCHS] = "resnet50"  # type: ignore[valid-type]
    cifar_stem: bool = False  # 3x3/1 stem for tiny images (tests), never for 224 px
    freeze_bn_stats: bool = True  # frozen stages keep their BatchNorm statistics too
    cbam_reduction: int = Field(16, ge=1)
    spatial_kernel: int = Field(7, ge=1)


class TrainingParams(StrictModel):
    optimizer: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    epochs: int = Field(10, ge=1)
    scheduler: Literal[SCHEDULERS] = "exponential"  # type: ignore[valid-type]
    gamma: float = Field(0.7, gt=0, le=1)  # decay per epoch
    step_size: int = Field(5, ge=1)  # step scheduler only
    class_weights: bool = True  # cross-entropy weights N / (K * n_k) from the training split


class VariantParams(StrictModel):
    lr: float = Field(gt=0)
    weights: str | None = None  # imagenet | path of a checkpoint; pretrained variants only


class ReportParams(StrictModel):
    misclassified: int = Field(16, ge=0, le=100)  # images in each variant's grid
    top_k: int = Field(5, ge=1)


class ArtworksParams(StudyRunParams):
    seed: int = Field(0, description="the split's seed, and the training seed without seeds")
    run: Annotated[list[str], BeforeValidator(as_list)] = Field(min_length=1)
    variants: dict[str, VariantParams]
    data: DataParams = DataParams()
    augmentation: AugmentParams = AugmentParams()
    model: ModelParams = ModelParams()
    training: TrainingParams = TrainingParams()
    report: ReportParams = ReportParams()

    @model_validator(mode="after")
    def _variants_are_known_and_configured(self) -> ArtworksParams:
        allowed = ", ".join(VARIANTS)
        unknown = [v for v in [*self.run, *self.variants] if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant(s) {sorted(set(unknown))}; allowed: {allowed}")
        unconfigured = [v for v in self.run if v not in self.variants]
        if unconfigured:
            raise ValueError(f"variant(s) {unconfigured} are in run but have no entry in variants")
        if len(set(self.run)) != len(self.run):
            raise ValueError(f"run lists a variant twice: {self.run}")
        for name in self.run:
            kind, weights = VARIANTS[name], self.variants[name].weights
            if kind.pretrained and weights in (None, "none"):
                raise ValueError(
                    f"variants.{name}.weights is required: 'imagenet' or a checkpoint path"
                )
            if not kind.pretrained and weights not in (None, "none"):
                raise ValueError(
                    f"variants.{name} trains from random initialisation; remove weights "
                    f"(got {weights!r})"
                )
        return self
