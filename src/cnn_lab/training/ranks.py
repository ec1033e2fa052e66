"""Where this process sits in a ``torchrun`` launch, read from the variables torchrun sets.

Kept free of torch and Kedro so Kedro's ``settings.py`` can ask "am I rank 0?" without
paying for a torch import on every ``kedro`` command. The training side re-exports these
from :mod:`cnn_lab.training.distributed`.
"""

from __future__ import annotations

import os


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} must be an integer") from None


def world_size() -> int:
    """Processes in the launch (``WORLD_SIZE``); 1 outside torchrun."""
    return _int_env("WORLD_SIZE", 1)


def rank() -> int:
    """This process's global rank (``RANK``); 0 outside torchrun."""
    return _int_env("RANK", 0) if world_size() > 1 else 0


def local_rank() -> int:
    """This process's rank on its node (``LOCAL_RANK``): which GPU it drives."""
    return _int_env("LOCAL_RANK", 0) if world_size() > 1 else 0


def is_distributed() -> bool:
    """True when torchrun (or anything setting ``WORLD_SIZE`` > 1) launched this process."""
    return world_size() > 1


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that logs, tracks and writes files."""
    return rank() == 0
