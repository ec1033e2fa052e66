"""Training: one engine (:func:`fit`, :func:`evaluate`), batching, optimizers, callbacks."""

from cnn_lab.training.batching import DeviceBatches, Normalisation
from cnn_lab.training.callbacks import (
    Callback,
    EarlyStopping,
    EpochState,
    GradientNormProbe,
    MlflowMetrics,
    ProgressLog,
    SplitEvaluation,
)
from cnn_lab.training.device import resolve_device, seed_everything
from cnn_lab.training.engine import History, evaluate, fit, predict
from cnn_lab.training.optim import build_optimizer, build_scheduler

__all__ = [
    "Callback",
    "DeviceBatches",
    "EarlyStopping",
    "EpochState",
    "GradientNormProbe",
    "History",
    "MlflowMetrics",
    "Normalisation",
    "ProgressLog",
    "SplitEvaluation",
    "build_optimizer",
    "build_scheduler",
    "evaluate",
    "fit",
    "predict",
    "resolve_device",
    "seed_everything",
]
