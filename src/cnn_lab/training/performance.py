"""How fast a run trains: precision, memory layout, compilation, threads, allocator.

Every choice is a parameter with an ``auto`` default that is resolved once per run against
the device actually used; the resolved choices come back as a flat dict so each variant
logs what really ran (not what was asked for). Knows nothing of Kedro or MLflow.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SWITCHES = ("auto", "on", "off")

# glibc mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
# Keep large blocks: fresh activations otherwise page-fault on every step (151 -> 214
# samples/s for the depth-8 CNN on one CPU thread).
ALLOCATOR_SETTINGS = {
    "mmap_threshold": (_M_MMAP_THRESHOLD, 1 << 30),
    "trim_threshold": (_M_TRIM_THRESHOLD, 4 << 30),
    "top_pad": (_M_TOP_PAD, 1 << 30),
}


@dataclass(frozen=True)
class PerformanceOptions:
    """What a study's ``performance`` block asks for (before resolution)."""

    precision: str = "auto"
    channels_last: str = "auto"
    compile: str = "off"
    cudnn_benchmark: str = "auto"
    allocator: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for key in ("channels_last", "compile", "cudnn_benchmark"):
            if getattr(self, key) not in SWITCHES:
                raise ValueError(f"{key} must be one of {SWITCHES}, got {getattr(self, key)!r}")


# oneDNN ISAs (ONEDNN_MAX_CPU_ISA) below AVX512_CORE_BF16: capped there, oneDNN emulates
# bf16 even when the CPU advertises it.
_ONEDNN_ISAS_WITHOUT_BF16 = frozenset(
    ["SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"]
)


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """AVX-512 BF16 or AMX advertised by the CPU (Linux) and not masked by
    ``ONEDNN_MAX_CPU_ISA``. Without them oneDNN emulates bf16 and a matmul runs several
    times *slower* than float32 (measured 27 vs 143 GFLOP/s on an AVX-512 CPU without the
    BF16 extension)."""
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _ONEDNN_ISAS_WITHOUT_BF16:
        return False
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def channels_last_hazard(model: nn.Module) -> str | None:
    """The first convolution of ``model`` whose channels_last weight gradient corrupts the
    heap in oneDNN's AVX2 kernels, or None. A 1x1 convolution with stride > 1 and 2-7
    input channels per group (a narrow ResNet's downsample) writes out of bounds in its
    NHWC backward-weights pass on AVX2-only CPUs (torch 2.14.1; the reproduction is in
    docs/performance.md); NCHW and AVX-512 kernels are sound. The test is the same on every
    CPU so that ``auto`` picks the same layout, and hence the same arithmetic, everywhere."""
    for name, module in model.named_modules():
        if (
            isinstance(module, nn.Conv2d)
            and module.kernel_size == (1, 1)
            and max(module.stride) > 1
            and module.in_channels // module.groups < 8
        ):
            return name or type(module).__name__
    return None


def bf16_is_fast(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_fast_bf16()
    return False


def _switch(value: str, auto: bool) -> bool:
    return auto if value == "auto" else value == "on"


@dataclass(frozen=True)
class Performance:
    """Resolved choices for one run on one device."""

    device: torch.device
    precision: str  # fp32 | bf16 | fp16
    channels_last: bool
    compile: bool
    cudnn_benchmark: bool
    allocator: str  # "on", "off" or why it could not be applied
    threads: int

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Forward pass and loss under mixed precision (a no-op in fp32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def make_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 needs loss scaling against gradient underflow; bf16 does not. (Studies
        allow fp16 on CUDA only; the engine itself runs it on any device, tests on CPU.)"""
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    def prepare_model(self, model: nn.Module) -> nn.Module:
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def compiled(self, model: nn.Module) -> nn.Module:
        """The module to train: compiled when asked (parameters shared with ``model``)."""
        return torch.compile(model) if self.compile else model

    @property
    def memory_format(self) -> torch.memory_format | None:
        return torch.channels_last if self.channels_last else None

    def as_params(self) -> dict[str, Any]:
        """Flat dict for MLflow params: what ran."""
        return {
            "perf_device": str(self.device),
            "perf_precision": self.precision,
            "perf_channels_last": self.channels_last,
            "perf_compile": self.compile,
            "perf_cudnn_benchmark": self.cudnn_benchmark,
            "perf_allocator": self.allocator,
            "perf_threads": self.threads,
        }


def resolve_performance(
    options: PerformanceOptions,
    device: torch.device,
    *,
    convolutional: bool,
    allow_reduced_precision: bool = True,
    hazard: str | None = None,
) -> Performance:
    """Turn ``auto`` into concrete choices for ``device``; refuse impossible requests
    (fp16 off CUDA) before any training.

    ``auto`` precision is bf16 on a CUDA device that runs it fast when the study allows
    reduced precision, else fp32 (on a CPU too: ask for bf16 there); ``auto``
    channels_last is on for CNNs on CPU and CUDA, except on a CPU when ``hazard`` names a
    layer oneDNN mishandles in that layout (:func:`channels_last_hazard`); compile is off
    unless asked (10-40 s of compilation per
    model did not pay on CPU).
    """
    precision = options.precision
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision 'fp16' needs a CUDA device (gradient scaling); got {device}")
    if precision == "bf16" and device.type == "mps":
        raise ValueError("precision 'bf16' is not supported on MPS here; use fp32")
    if precision == "auto":
        # Never bf16 on a CPU unasked: the same seed would then give other numbers on CPUs
        # with AVX-512 BF16/AMX than on the AVX2 ones, and networks at the edge of
        # trainability (the deep plain MLPs) change outcome with 8 bits of mantissa.
        fast = device.type == "cuda" and bf16_is_fast(device)
        precision = "bf16" if allow_reduced_precision and fast else "fp32"
    if precision == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        logger.warning(
            "precision 'bf16' on a CPU without AVX-512 BF16 or AMX: oneDNN emulates it, "
            "several times slower than fp32"
        )
    # NHWC convolutions: 1.03-1.84x faster training on this project's CNNs on a CPU in
    # fp32 as well (benchmarks/README.md); MPS is left alone (not measured).
    channels_last = convolutional and _switch(options.channels_last, device.type in ("cpu", "cuda"))
    if channels_last and hazard is not None and device.type == "cpu":
        if options.channels_last == "auto":
            logger.info("channels_last off: layer %r is unsafe in oneDNN's NHWC kernels", hazard)
            channels_last = False
        else:
            logger.warning(
                "channels_last 'on' with layer %r: oneDNN's AVX2 kernels corrupt memory on "
                "this layer's weight gradient (docs/performance.md); use 'auto' or 'off' on "
                "CPUs without AVX-512",
                hazard,
            )
    cudnn_benchmark = device.type == "cuda" and _switch(options.cudnn_benchmark, True)
    return Performance(
        device=device,
        precision=precision,
        channels_last=channels_last,
        compile=_switch(options.compile, False),
        cudnn_benchmark=cudnn_benchmark,
        allocator="on" if options.allocator else "off",
        threads=torch.get_num_threads(),
    )


def apply_process_settings(performance: Performance) -> Performance:
    """Settings that hold for the whole process: cuDNN autotuning and the allocator.
    Returns ``performance`` with ``allocator`` saying what actually happened."""
    if performance.device.type == "cuda":
        torch.backends.cudnn.benchmark = performance.cudnn_benchmark
    allocator = performance.allocator
    if allocator == "on":
        allocator = keep_large_blocks()
    return Performance(**{**performance.__dict__, "allocator": allocator})


def set_up_model(
    options: PerformanceOptions, model: nn.Module, device: torch.device
) -> tuple[Performance, nn.Module, nn.Module]:
    """Resolve ``options`` for ``model`` on ``device``, apply the process settings, and
    return (what ran, the model in its memory layout, the module to train: compiled or
    the same model). Saves and loads go through the second, training through the third."""
    performance = apply_process_settings(
        resolve_performance(
            options,
            device,
            convolutional=any(isinstance(m, nn.Conv2d) for m in model.modules()),
            hazard=channels_last_hazard(model),
        )
    )
    model = performance.prepare_model(model)
    return performance, model, performance.compiled(model)


def keep_large_blocks() -> str:
    """Tell glibc's malloc to keep large freed blocks instead of returning them to the
    OS (``mallopt``, same as the ``MALLOC_*_`` environment variables). Returns "on", or
    why not: a no-op off Linux/glibc."""
    if not sys.platform.startswith("linux"):
        return f"unsupported ({sys.platform})"
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "unsupported (no glibc mallopt)"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    failed = [
        key
        for key, (param, value) in ALLOCATOR_SETTINGS.items()
        if not mallopt(param, min(value, 2**31 - 1))
    ]
    return "on" if not failed else f"refused ({', '.join(failed)})"


def to_memory_format(batch: Tensor, memory_format: torch.memory_format | None) -> Tensor:
    """Image batches (N x C x H x W) in ``memory_format``; other tensors unchanged."""
    if memory_format is None or batch.dim() != 4:
        return batch
    return batch.contiguous(memory_format=memory_format)


@contextlib.contextmanager
def observed_autocast(model: nn.Module) -> Iterator[list[torch.dtype | None]]:
    """Record, per forward call, the autocast dtype active inside ``model`` (None when
    autocast is off): proof that the logged precision is the one that ran."""
    seen: list[torch.dtype | None] = []

    def hook(module: nn.Module, inputs: Any) -> None:
        device_type = "cuda" if any(p.is_cuda for p in module.parameters()) else "cpu"
        enabled = torch.is_autocast_enabled(device_type)
        seen.append(torch.get_autocast_dtype(device_type) if enabled else None)

    handle = model.register_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()
