"""Variants in worker processes (``kedro run --runner=ParallelRunner``): which GPU a
worker trains on, and what the main process hands its workers through the environment.

Workers inherit the main process's environment whether they are forked or spawned, so
the project hook (``hooks.WorkerProcesses``) exports here what they need: the MLflow
parent run, the config env and the GPU assignment. Kept free of torch, MLflow and Kedro
imports: ``kedro`` loads it for every command.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from typing import Any, Literal

from pydantic import Field, field_validator

from cnn_lab.study.params import StrictModel, as_list, validate_parameters

PARENT_RUN_ENV = "CNN_LAB_MLFLOW_PARENT_RUN_ID"
MLFLOW_RUN_ID_ENV = "MLFLOW_RUN_ID"  # MLflow's own: a run started without an id continues it
RUN_ENV_ENV = "CNN_LAB_RUN_ENV"
DEVICES_ENV = "CNN_LAB_DEVICES"


class ParallelParams(StrictModel):
    """``params:parallel``: how worker processes share the GPUs of one machine."""

    devices: Literal["round_robin"] | list[int] | None = Field(
        None,
        description="null: every variant uses <study>.device; round_robin: worker k uses "
        "GPU k mod (visible GPUs); a list [0, 1]: worker k uses the (k mod length)-th entry",
    )

    @field_validator("devices", mode="before")
    @classmethod
    def _devices(cls, value: Any) -> Any:
        """``--params "parallel.devices=0 1"`` arrives as a string: [0, 1]."""
        if value is None or value == "round_robin":
            return value
        items = as_list(value)
        if (
            isinstance(items, list)
            and items
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items)
        ):
            return items
        raise ValueError("use null, round_robin or a list of GPU indices such as [0, 1]")


def parse_parallel(raw: Any) -> ParallelParams:
    """Validate ``params:parallel`` (absent = defaults), naming the key on error."""
    return validate_parameters(ParallelParams, {} if raw is None else raw, "parallel")


def gpu_for_worker(worker: int, devices: str | list[int] | None, gpu_count: int) -> str | None:
    """The CUDA device worker number ``worker`` (0, 1, ...) trains on, e.g. ``"cuda:1"``;
    None leaves the study's own ``device`` setting alone (no assignment, or no GPU).

    Consecutive workers get different GPUs while there are as many GPUs as workers.
    """
    if devices is None or gpu_count <= 0:
        return None
    if devices == "round_robin":
        return f"cuda:{worker % gpu_count}"
    if isinstance(devices, str):
        raise ValueError(f"parallel.devices: got {devices!r}; use null, round_robin or a list")
    index = devices[worker % len(devices)]
    if index >= gpu_count:
        raise ValueError(
            f"parallel.devices: GPU {index} is listed but only {gpu_count} GPU(s) are visible "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
            "list indices below that count"
        )
    return f"cuda:{index}"


def worker_number() -> int | None:
    """This worker process's number (0, 1, ...); None in the main process, where nothing
    is reassigned.

    multiprocessing numbers the children of a process 1, 2, ... in the order they start,
    and a process pool starts its workers one after another: the workers of one pool get
    consecutive numbers, so round robin gives them different GPUs.
    """
    if multiprocessing.parent_process() is None:
        return None
    identity = multiprocessing.current_process()._identity  # (n,) for the n-th child
    return identity[0] - 1 if identity else None


def export_devices(params: ParallelParams) -> None:
    """Hand the GPU assignment to workers (None removes an earlier run's)."""
    if params.devices is None:
        os.environ.pop(DEVICES_ENV, None)
    else:
        os.environ[DEVICES_ENV] = json.dumps(params.devices)


def exported_devices() -> str | list[int] | None:
    value = os.environ.get(DEVICES_ENV)
    return json.loads(value) if value else None


def export_parent_run(
    run_id: str | None, tracking_uri: str | None = None, *, workers: bool = False
) -> None:
    """Export the parent run (and where it is stored) to worker processes; ``workers``:
    nodes run in other processes, where a run started without an id should continue it.
    ``None`` removes what an earlier call exported."""
    exported = os.environ.pop(PARENT_RUN_ENV, None)
    if exported is not None and os.environ.get(MLFLOW_RUN_ID_ENV) == exported:
        os.environ.pop(MLFLOW_RUN_ID_ENV)
    if run_id is None:
        return
    os.environ[PARENT_RUN_ENV] = run_id
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    if workers:
        os.environ[MLFLOW_RUN_ID_ENV] = run_id


def exported_parent_run() -> str | None:
    """The parent run exported by the main process; in a worker, MLflow's own
    ``MLFLOW_RUN_ID`` is dropped here, so the next run started is a new (child) run."""
    run_id = os.environ.get(PARENT_RUN_ENV) or None
    if run_id is not None and os.environ.get(MLFLOW_RUN_ID_ENV) == run_id:
        os.environ.pop(MLFLOW_RUN_ID_ENV)
    return run_id


def assigned_gpu() -> str | None:
    """The GPU ``parallel.devices`` gives this worker process (``"cuda:1"``), else None."""
    devices, worker = exported_devices(), worker_number()
    if devices is None or worker is None:
        return None
    import torch

    return gpu_for_worker(worker, devices, torch.cuda.device_count())
