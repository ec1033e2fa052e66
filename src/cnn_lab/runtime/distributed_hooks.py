"""``kedro run`` under torchrun: every rank runs the same nodes (a training node needs all
of them for its DistributedDataParallel steps), rank 0 alone writes, tracks and talks.

- MLflow: ``settings.py`` leaves kedro-mlflow's hooks unregistered on ranks other than 0
  (Kedro's ``DISABLE_HOOKS_FOR_PLUGINS``), so they start no run and never open the tracking
  store; with no active run the library's tracking helpers do nothing there either.
- Catalog: on those ranks every output of the pipeline becomes a :class:`MemoryDataset`,
  so later nodes of the same run still get their inputs but nothing reaches ``data/``.
- Logs: those ranks log warnings and errors only.

In a single process (no ``WORLD_SIZE`` > 1) these hooks do nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl

from cnn_lab.training.ranks import is_distributed, is_main_process

# Kedro matches plugin distribution names exactly; wheels have spelled this one both ways.
MLFLOW_PLUGIN_NAMES = ("kedro_mlflow", "kedro-mlflow")


def plugins_to_disable() -> tuple[str, ...]:
    """For ``DISABLE_HOOKS_FOR_PLUGINS``: kedro-mlflow on every rank but 0."""
    return () if is_main_process() else MLFLOW_PLUGIN_NAMES


class DistributedRunHooks:
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        if not is_distributed():
            return
        from cnn_lab.training.distributed import setup

        setup()  # join the process group now: a rank that cannot join fails the run here
        if not is_main_process():
            logging.disable(logging.INFO)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if is_main_process():
            return
        from kedro.io import MemoryDataset

        for name in pipeline.all_outputs():
            catalog[name] = MemoryDataset(copy_mode="assign")
