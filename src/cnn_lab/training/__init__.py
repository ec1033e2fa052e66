"""Training: one engine (:func:`fit`, :func:`evaluate`), batching, optimizers, callbacks."""

from cnn_lab.training.batching import DeviceBatches, Normalisation
from cnn_lab.training.callbacks import (
    Callback,
    EarlyStopping,
    EpochState,
    GradientNormProbe,
    ProgressLog,
    SplitEvaluation,
)
from cnn_lab.training.device import resolve_device, seed_everything, synchronize
from cnn_lab.training.engine import History, fit
from cnn_lab.training.optim import build_optimizer, build_scheduler
from cnn_lab.training.performance import Performance, PerformanceOptions, resolve_performance
from cnn_lab.training.scoring import evaluate, predict

__all__ = [
    "Callback",
    "DeviceBatches",
    "EarlyStopping",
    "EpochState",
    "GradientNormProbe",
    "History",
    "Normalisation",
    "Performance",
    "PerformanceOptions",
    "ProgressLog",
    "SplitEvaluation",
    "build_optimizer",
    "build_scheduler",
    "evaluate",
    "fit",
    "predict",
    "resolve_device",
    "synchronize",
    "resolve_performance",
    "seed_everything",
]
