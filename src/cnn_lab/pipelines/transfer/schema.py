"""The declared shape of ``params:transfer``; anything else is an error before training."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from cnn_lab.evaluation.baselines import SVM_SOLVERS
from cnn_lab.models.resnet import FREEZE_PRESETS, RESNET_ARCHS
from cnn_lab.study.params import StrictModel, as_list
from cnn_lab.study.training_params import StudyRunParams
from cnn_lab.study.training_params import TrainingParams as BaseTrainingParams
from cnn_lab.training.optim import OPTIMIZERS, SCHEDULERS
from cnn_lab.training.search import PRUNERS

DATASETS = ("digits", "mnist", "cifar10", "cifar100")
# Classes per dataset, known before any file is read (for checkpoint checks).
DATASET_CLASSES = {"digits": 10, "mnist": 10, "cifar10": 10, "cifar100": 100}
DATASET_CHANNELS = {"digits": 1, "mnist": 1, "cifar10": 3, "cifar100": 3}
FINETUNE_PRESETS = ("head", "layer4", "layer3", "all")
Preset = Literal[tuple(FREEZE_PRESETS)]  # type: ignore[valid-type]
Optimizer = Literal[OPTIMIZERS]  # type: ignore[valid-type]
IntList = Annotated[list[Annotated[int, Field(ge=0)]], BeforeValidator(as_list)]


class TaskParams(StrictModel):
    """One side of the transfer: a dataset, optionally a subset of its classes."""

    dataset: Literal[DATASETS] = "digits"  # type: ignore[valid-type]
    classes: IntList = Field(default_factory=list, description="empty: every class")
    val_ratio: float = Field(0.2, gt=0, lt=1)
    # Only for datasets without an official test set (digits).
    test_ratio: float = Field(0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _classes_exist(self) -> TaskParams:
        available = DATASET_CLASSES[self.dataset]
        wrong = [c for c in self.classes if c >= available]
        if wrong:
            raise ValueError(f"classes {wrong} do not exist in {self.dataset} (0..{available - 1})")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes {self.classes} repeat a class")
        return self

    @property
    def num_classes(self) -> int:
        return len(self.classes) or DATASET_CLASSES[self.dataset]


class DataParams(StrictModel):
    root: str = "data/01_raw"
    download: bool = False


class ModelParams(StrictModel):
    arch: Literal[RESNET_ARCHS] = "resnet18"  # type: ignore[valid-type]
    width: int = Field(64, ge=1, description="stem channels; torchvision's ResNets use 64")
    cifar_stem: bool = True
    freeze_bn_stats: bool = True


class TrainingParams(BaseTrainingParams):
    epochs: int = Field(10, ge=1)
    scheduler: Literal[SCHEDULERS] = "none"  # type: ignore[valid-type]


class SourceParams(StrictModel):
    """``weights``: ``train`` (the pipeline trains the source model), ``imagenet`` or the
    path of a checkpoint (a state_dict, loaded with weights_only)."""

    task: TaskParams = TaskParams(classes=[0, 1, 2, 3, 4])
    weights: str = "train"
    training: TrainingParams = TrainingParams()


class EarlyStoppingParams(StrictModel):
    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.0, ge=0)


class FinetuneParams(TrainingParams):
    """Shared by every fine-tuning run; ``lr`` is the head's learning rate."""

    presets: Annotated[list[Preset], BeforeValidator(as_list)] = Field(
        default_factory=lambda: list(FINETUNE_PRESETS), min_length=1
    )
    backbone_lr_multiplier: float = Field(0.1, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)


class OptimizerGridParams(StrictModel):
    names: Annotated[list[Optimizer], BeforeValidator(as_list)] = Field(
        default_factory=lambda: list(OPTIMIZERS), min_length=1
    )
    lrs: Annotated[list[Annotated[float, Field(gt=0)]], BeforeValidator(as_list)] = Field(
        default_factory=lambda: [1e-3], min_length=1
    )
    preset: Preset = "all"


class RangeParams(StrictModel):
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> RangeParams:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class SearchParams(StrictModel):
    n_trials: int = Field(
        10, ge=0, description="trials this run adds; 0 takes the best of a stored, shared study"
    )
    preset: Preset = "all"
    lr: RangeParams = RangeParams(low=1e-6, high=1e-2)
    batch_sizes: Annotated[list[Annotated[int, Field(ge=1)]], BeforeValidator(as_list)] = Field(
        default_factory=lambda: [16, 32, 64, 128, 256], min_length=1
    )
    dropout: RangeParams = RangeParams(low=0.0, high=0.5)
    # Optimizers the search may pick; null = finetune.optimizer only. Listing those of the
    # optimizer runs lets the search start from the best untuned run whichever it is.
    optimizers: Annotated[list[Optimizer] | None, BeforeValidator(as_list)] = None
    pruner: Literal[PRUNERS] = "median"  # type: ignore[valid-type]
    pruner_startup_trials: int = Field(2, ge=0)
    storage: str = Field(
        "sqlite:///data/07_model_output/transfer/optuna.db",
        description="'memory', sqlite:///<file> (relative to the project) or a database URL",
    )
    study_name: str = "transfer"

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, value: RangeParams) -> RangeParams:
        if value.low <= 0:
            raise ValueError(f"low must be positive for a log-uniform range, got {value.low}")
        return value

    @field_validator("dropout")
    @classmethod
    def _dropout_probability(cls, value: RangeParams) -> RangeParams:
        if value.low < 0 or value.high >= 1:
            raise ValueError(f"dropout must lie in [0, 1), got [{value.low}, {value.high}]")
        return value


class SvmParams(StrictModel):
    solver: Literal[SVM_SOLVERS] = "primal"  # type: ignore[valid-type]
    C: float = Field(1.0, gt=0)
    max_iter: int = Field(1000, ge=1)


class LogisticParams(StrictModel):
    C: float = Field(1.0, gt=0)
    max_iter: int = Field(1000, ge=1)


class BaselineParams(StrictModel):
    feature_batch_size: int = Field(512, ge=1)
    svm: SvmParams = SvmParams()
    logistic: LogisticParams = LogisticParams()


class TransferParams(StudyRunParams):
    seed: int = Field(
        0,
        description="splits, source network, baselines and search; also the fine-tuning "
        "seed without seeds",
    )
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    source: SourceParams = SourceParams()
    target: TaskParams = TaskParams(classes=[5, 6, 7, 8, 9])
    baselines: BaselineParams = BaselineParams()
    finetune: FinetuneParams = FinetuneParams()
    early_stopping: EarlyStoppingParams = EarlyStoppingParams()
    optimizers: OptimizerGridParams = OptimizerGridParams()
    search: SearchParams = SearchParams()

    @model_validator(mode="after")
    def _same_channels(self) -> TransferParams:
        source, target = self.source.task.dataset, self.target.dataset
        if DATASET_CHANNELS[source] != DATASET_CHANNELS[target]:
            raise ValueError(
                f"source dataset {source} has {DATASET_CHANNELS[source]} channel(s) but target "
                f"{target} has {DATASET_CHANNELS[target]}; one network cannot take both"
            )
        return self
