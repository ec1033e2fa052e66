"""Data-parallel training over the processes of a ``torchrun`` launch (one GPU each, or CPU
processes with gloo), so one big model trains on several GPUs or nodes.

Every process runs the same code on its own shard of each batch; DistributedDataParallel
averages the gradients, and the helpers here make the rest agree: the loss of each shard is
weighted by its share of the global batch, metric sums and counts are added across ranks,
and rank 0's view of an epoch (timings, probe values, the decision to stop) is sent to all,
so every rank holds the same history. Only rank 0 logs, tracks and writes files.

In a single process (no ``WORLD_SIZE`` > 1 in the environment) nothing here runs: no process
group, no wrapper, no extra work, bit-identical results.
"""

from __future__ import annotations

import atexit
import inspect
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from cnn_lab.training.ranks import is_distributed, is_main_process, local_rank, rank, world_size

__all__ = [
    "all_gather_object",
    "batch_share",
    "broadcast_buffers",
    "broadcast_object",
    "data_parallel",
    "is_distributed",
    "is_main_process",
    "is_sharded",
    "local_rank",
    "process_device",
    "rank",
    "reduce_sums",
    "setup",
    "shard_bounds",
    "world_size",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def setup() -> None:
    """Join this launch's process group (once): gloo for CPU tensors, plus NCCL for CUDA
    tensors when a GPU is visible. A no-op in a single process or when already joined."""
    if not is_distributed() or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(_cuda_index())
        backend = "cpu:gloo,cuda:nccl"  # metrics follow their tensors; objects go by gloo
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend)  # env://: MASTER_ADDR, MASTER_PORT from torchrun
    atexit.register(_teardown)
    if is_main_process():
        logger.info("distributed training: %d processes, backend %s", world_size(), backend)


def _teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _cuda_index() -> int:
    """This process's GPU: ``LOCAL_RANK``, or 0 when the launcher shows each process one GPU."""
    count = torch.cuda.device_count()
    if count == 1:
        return 0
    if local_rank() >= count:
        raise ValueError(
            f"LOCAL_RANK {local_rank()} has no GPU: this node shows {count} GPUs; "
            f"run torchrun with --nproc_per_node={count} or fewer"
        )
    return local_rank()


def process_device(device: torch.device) -> torch.device:
    """The device this rank trains on for a requested ``device``: CUDA means this rank's
    GPU (``cuda:LOCAL_RANK``); the CPU stays the CPU."""
    if device.type == "cuda":
        return torch.device("cuda", _cuda_index())
    if device.type != "cpu":
        raise ValueError(
            f"device {device.type!r} cannot train under torchrun: set the study's device "
            "parameter to 'cuda' (NCCL) or 'cpu' (gloo)"
        )
    return device


def shard_bounds(size: int) -> tuple[int, int]:
    """This rank's contiguous part ``[lo, hi)`` of a batch of ``size``: sizes differ by at
    most one and the parts of ranks 0..N-1, in order, make up the whole batch."""
    world, me = world_size(), rank()
    return size * me // world, size * (me + 1) // world


def is_sharded(batches: Any) -> bool:
    """Whether ``batches`` yields only this rank's share of each batch (then metrics over it
    must be added across ranks)."""
    return is_distributed() and bool(getattr(batches, "sharded", False))


def batch_share(count: int, device: torch.device) -> Tensor:
    """``count * world / global count``: multiplies this rank's mean loss so that DDP's
    average of the ranks' gradients is the gradient of the mean over the whole global
    batch, also when shards differ in size (exactly 1.0 when they are equal)."""
    total = torch.full((1,), float(count), device=device)
    dist.all_reduce(total)
    return (count * world_size()) / total


def reduce_sums(*values: Tensor | float, device: torch.device) -> list[float]:
    """Each value summed over all ranks (float64), read back once."""
    setup()
    stacked = torch.stack(
        [torch.as_tensor(v, device=device).detach().to(torch.float64).reshape(()) for v in values]
    )
    dist.all_reduce(stacked)
    return stacked.tolist()


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (picklable objects: metrics, checkpoints)."""
    setup()
    holder = [obj if is_main_process() else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]  # type: ignore[return-value]


def all_gather_object(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order."""
    setup()
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_buffers(module: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, so each rank
    evaluates and checkpoints exactly the same model."""
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


# Buffers are synced once at wrapping, then by the engine each epoch, not in every forward
# (torch 2.14 renamed the switch; older versions only know broadcast_buffers).
_NO_FORWARD_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    else {"broadcast_buffers": False}
)


def _batch_norm_layers(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    found = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
                child, nn.SyncBatchNorm
            ):
                found.append((parent, name, child))
    return found


@contextmanager
def data_parallel(
    model: nn.Module, *, sync_batch_norm: bool = True
) -> Iterator[DistributedDataParallel]:
    """``model`` wrapped in DistributedDataParallel for the duration of a ``fit``.

    On CUDA with ``sync_batch_norm``, BatchNorm layers are swapped for SyncBatchNorm twins
    sharing their parameters and statistics (batch statistics over the global batch, as in
    one process) and put back on exit. On CPU (gloo has no SyncBatchNorm) each rank
    normalises with its own shard's statistics. Buffers are not broadcast every step: the
    engine sends rank 0's once per epoch (:func:`broadcast_buffers`).
    """
    setup()
    device = next(model.parameters()).device
    swapped = []
    if sync_batch_norm and device.type == "cuda":
        swapped = _batch_norm_layers(model)
        for parent, name, layer in swapped:
            setattr(parent, name, nn.SyncBatchNorm.convert_sync_batchnorm(layer))
    elif _batch_norm_layers(model) and is_main_process():
        logger.info("BatchNorm under torchrun on %s: statistics per process shard", device)
    try:
        yield DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None, **_NO_FORWARD_SYNC
        )
    finally:
        for parent, name, layer in swapped:
            setattr(parent, name, layer)
