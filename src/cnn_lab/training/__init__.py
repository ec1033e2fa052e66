"""Training: one engine (:func:`fit`, :func:`evaluate`), batching, optimizers, callbacks.

The names below load on first use: ``cnn_lab.training.ranks`` is imported by every
``kedro`` command (through settings.py) and must not pay for a torch import.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "DeviceBatches": "batching",
    "Normalisation": "batching",
    "Callback": "callbacks",
    "EarlyStopping": "callbacks",
    "EpochState": "callbacks",
    "GradientNormProbe": "callbacks",
    "ProgressLog": "callbacks",
    "SplitEvaluation": "callbacks",
    "resolve_device": "device",
    "seed_everything": "device",
    "synchronize": "device",
    "History": "engine",
    "fit": "engine",
    "build_optimizer": "optim",
    "build_scheduler": "optim",
    "Performance": "performance",
    "PerformanceOptions": "performance",
    "resolve_performance": "performance",
    "evaluate": "scoring",
    "predict": "scoring",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
