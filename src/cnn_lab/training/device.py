"""Where training runs: CUDA, then Apple's MPS, then the CPU, unless a parameter says."""

from __future__ import annotations

import torch

from cnn_lab.runtime.parallel import assigned_gpu
from cnn_lab.training import distributed

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """The device ``name`` asks for; under torchrun, this rank's own GPU (``cuda:LOCAL_RANK``)."""
    device = _resolve(name)
    if distributed.is_distributed():
        if name == "auto" and device.type == "mps":
            device = torch.device("cpu")  # no process-group backend carries MPS tensors
        return distributed.process_device(device)
    return device


def _resolve(name: str) -> torch.device:
    if name not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}; got {name!r}")
    if name in ("auto", "cuda") and torch.cuda.is_available() and (gpu := assigned_gpu()):
        torch.cuda.set_device(gpu)  # a ParallelRunner worker's own GPU (parallel.devices)
        return torch.device(gpu)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is visible to torch")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was requested but MPS is not available on this machine")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device``: CUDA runs asynchronously, so a wall-clock
    timing read without this measures the queueing, not the work. A no-op elsewhere."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seed_everything(seed: int) -> None:
    """Seed every generator a run draws from, so CPU runs repeat exactly."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
