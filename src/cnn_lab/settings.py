"""Kedro project settings: config loading, hooks and the resolvers our YAML uses."""

from __future__ import annotations

from kedro.config import OmegaConfigLoader

from cnn_lab.runtime import console
from cnn_lab.runtime.distributed_hooks import DistributedRunHooks, plugins_to_disable
from cnn_lab.runtime.hooks import (
    ModelRegistry,
    RunIsolation,
    StudyGridHook,
    TrackingStoreCheck,
    WorkerProcesses,
)
from cnn_lab.runtime.project import CONFIG_LOADER_ARGS  # noqa: F401  (Kedro reads it here)

console.install()  # before Kedro loads its plugins' commands: their imports warn


HOOKS = (
    TrackingStoreCheck(),
    RunIsolation(),
    StudyGridHook(),
    DistributedRunHooks(),
    WorkerProcesses(),
    ModelRegistry(),
    console.RunPresentation(),
)
# torchrun: kedro-mlflow runs on rank 0 only (one MLflow run per launch; distributed_hooks.py).
DISABLE_HOOKS_FOR_PLUGINS = plugins_to_disable()

CONFIG_LOADER_CLASS = OmegaConfigLoader
