"""The declared shape of ``params:cam``; anything else is an error before training."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from cnn_lab.data.shapes import check_classes
from cnn_lab.evaluation.saliency import METHODS
from cnn_lab.study.model_jobs import PRETRAIN
from cnn_lab.study.params import FractionRange, StrictModel, as_list
from cnn_lab.study.training_params import StudyRunParams
from cnn_lab.study.training_params import TrainingParams as BaseTrainingParams
from cnn_lab.training.optim import SCHEDULERS

DATA_SOURCES = ("shapes", "imagenette")
# Our CAM, pytorch-grad-cam's methods and the chance maps.
SALIENCY_METHODS = METHODS
DEFAULT_METHODS = ["cam", "gradcam", "gradcam++", "scorecam", "layercam", "uniform", "centred"]
ShapeClasses = Annotated[list[str], BeforeValidator(as_list), AfterValidator(check_classes)]


def _known_family(family: str) -> str:
    from cnn_lab.models.registry import lookup_family

    lookup_family(family)  # its ValueError names the known families
    return family


def _known_colormap(name: str) -> str:
    import matplotlib

    if name not in matplotlib.colormaps:
        raise ValueError("not a matplotlib colormap (e.g. jet, viridis, inferno, turbo)")
    return name


class ShapesParams(StrictModel):
    classes: ShapeClasses = Field(
        default=["circle", "square", "triangle", "cross", "ring"], min_length=2
    )
    train_size: int = Field(1500, ge=10)
    test_size: int = Field(500, ge=1)
    scale: FractionRange = (0.25, 0.55)
    noise: float = Field(8.0, ge=0)


class DataParams(StrictModel):
    source: Literal[DATA_SOURCES] = "shapes"  # type: ignore[valid-type]
    image_size: int = Field(64, ge=16, description="side of the square images, in pixels")
    root: str = "data/01_raw/imagenette"
    download: bool = False
    max_per_class: int | None = Field(None, ge=1)
    workers: int = Field(4, ge=1)
    val_ratio: float = Field(0.2, gt=0, lt=1)
    test_ratio: float = Field(0.2, gt=0, lt=1)  # only for a folder without train/val
    shapes: ShapesParams = ShapesParams()


class TrainingParams(BaseTrainingParams):
    eval_batch_size: int = Field(256, ge=1)
    epochs: int = Field(10, ge=1)
    scheduler: Literal[SCHEDULERS] = "cosine"  # type: ignore[valid-type]


class PretrainTrainingParams(TrainingParams):
    batch_size: int = Field(32, ge=1)
    lr: float = Field(0.002, gt=0)


class PretrainParams(StrictModel):
    """The source task of a model with ``weights: pretrain``: generated shapes of classes
    the target does not have (image size, object scale and noise as the target's), on
    which the whole network trains before its head is fine-tuned on the target."""

    classes: ShapeClasses = Field(
        default=["diamond", "star", "ellipse", "semicircle", "hourglass", "frame"],
        min_length=2,
    )
    train_size: int = Field(2000, ge=10, description="source pool (val_ratio of it validates)")
    test_size: int = Field(300, ge=1)
    training: PretrainTrainingParams = PretrainTrainingParams()


class AugmentParams(StrictModel):
    crop_size: int | None = Field(None, ge=8, description="random resized crops; null: none")
    crop_scale: FractionRange = (0.35, 1.0)
    flip: bool = True


class ModelParams(StrictModel):
    family: Annotated[str, AfterValidator(_known_family)]
    options: dict[str, Any] = Field(default_factory=dict)
    feature_layer: str | None = None  # found automatically when null
    freeze: Literal["all", "layer2", "layer3", "layer4", "head"] = "all"  # resnet only
    scratch_if_weights_missing: bool = False
    augment: AugmentParams = AugmentParams()
    training: TrainingParams = TrainingParams()

    @model_validator(mode="after")
    def _options_fit_family(self) -> ModelParams:
        from cnn_lab.models.registry import check_options
        from cnn_lab.models.resnet import check_output_stride

        check_options(self.family, self.options)
        if self.family != "resnet" and self.freeze != "all":
            raise ValueError("freeze applies to the resnet family only; leave it at 'all'")
        if self.family == "resnet" and "output_stride" in self.options:
            check_output_stride(self.options["output_stride"], key="options.output_stride")
        return self


class RenderParams(StrictModel):
    colormap: Annotated[str, AfterValidator(_known_colormap)] = "jet"
    alpha: float = Field(0.5, ge=0, le=1)
    top_k: int = Field(3, ge=1)
    top_images: int = Field(4, ge=1)


class CamParams(StudyRunParams):
    seed: int = Field(0, description="the data's seed, and the training seed without seeds")
    data: DataParams = DataParams()
    models: dict[str, ModelParams] = Field(min_length=1)
    pretrain: PretrainParams = PretrainParams()
    threshold: float = Field(0.2, gt=0, lt=1, description="share of the CAM maximum kept")
    iou: float = Field(0.5, gt=0, le=1, description="IoU for a correct localisation")
    centre_sigma: float = Field(0.15, gt=0, description="centred chance map, share of a side")
    max_eval_images: int | None = Field(None, ge=1)
    methods: Annotated[list[Literal[SALIENCY_METHODS]], BeforeValidator(as_list)] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(DEFAULT_METHODS), min_length=1
    )
    method_images: int | None = Field(
        None, ge=1, description="test images every method is compared on (null: all)"
    )
    faithfulness_steps: int = Field(10, ge=2, description="deletion/insertion curve steps")
    render: RenderParams = RenderParams()

    @field_validator("models")
    @classmethod
    def _names(cls, models: dict[str, ModelParams]) -> dict[str, ModelParams]:
        bad = [n for n in models if not n.isidentifier()]
        if bad:
            raise ValueError(f"model names must be identifiers (letters, digits, _): {bad}")
        return models

    @field_validator("methods")
    @classmethod
    def _distinct(cls, methods: list[str]) -> list[str]:
        if len(set(methods)) != len(methods):
            raise ValueError("methods must be distinct")
        return methods

    @model_validator(mode="after")
    def _pretrain_is_a_transfer(self) -> CamParams:
        users = [n for n, m in self.models.items() if m.options.get("weights") == PRETRAIN]
        if users and self.data.source == "shapes":
            shared = sorted(set(self.pretrain.classes) & set(self.data.shapes.classes))
            if shared:
                raise ValueError(
                    f"pretrain.classes share {shared} with data.shapes.classes: the source "
                    f"task of {', '.join(users)} (weights: {PRETRAIN}) must have other classes"
                )
        return self
