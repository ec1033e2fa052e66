"""One trained variant = one checkpoint store + one nested MLflow run, shared by every
study so that a killed ``kedro run`` resumes each unfinished variant where it stopped,
reuses finished ones, and continues their MLflow runs without gaps (docs/resume.md)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cnn_lab.runtime.project import find_project_root
from cnn_lab.runtime.tracking import (
    MlflowMetrics,
    child_run,
    claim_finished,
    last_logged_step,
    log_history,
)
from cnn_lab.training.callbacks import Callback
from cnn_lab.training.checkpoint import CheckpointStore, fingerprint, parameters_key
from cnn_lab.training.recipe import SplitData


@dataclass
class VariantRun:
    """What a node needs inside :func:`variant_run`: pass ``store`` and ``callbacks`` to
    training, and log its own results only when ``logging``."""

    store: CheckpointStore | None
    run_id: str | None
    reused: bool  # finished earlier: training returns the stored result at once
    resumed_from_epoch: int = 0
    callbacks: list[Callback] = field(default_factory=list)

    @property
    def logging(self) -> bool:
        """A live MLflow run that has not already recorded this variant's results."""
        return self.run_id is not None and not self.reused


def checkpoint_store(
    study: str, name: str, config: Mapping[str, Any], *key_parts: Any
) -> CheckpointStore:
    """``name``'s store under the study's ``checkpoint_dir``, keyed by ``key_parts`` (the
    effective parameters and the data split): other parameters never resume from it.
    ``resume: false`` deletes what is there, so the variant starts afresh."""
    folder = config.get("checkpoint_dir") or f"data/06_models/checkpoints/{study}"
    store = CheckpointStore(
        find_project_root() / folder,
        parameters_key(*key_parts),
        label=name,
        setting=f"{study}.checkpoint_dir",
    )
    if not config.get("resume", True):
        store.clear()
    return store


def data_fingerprint(data: SplitData) -> str:
    """A hash of the images, labels and class names a variant is trained, validated and
    tested on. Split indices alone name positions, not images: two image folders of the
    same size would share a checkpoint without it."""
    parts = [p for p in (data.train, data.val, data.test) if p is not None]
    return fingerprint(*[value for p in parts for value in (p.images, p.labels, p.class_names)])


@contextmanager
def variant_run(
    store: CheckpointStore | None,
    name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
) -> Iterator[VariantRun]:
    """The variant's nested MLflow run, continued if its checkpoint names one.

    A finished variant opens no run (its results were logged when it finished); its run
    is made findable from this run's parent (``claim_finished``). A continued run is
    re-parented under this run's parent. A new run for a resumed variant first gets the
    epochs its lost run had logged, so its metric histories have neither gaps nor
    duplicates. ``store`` None: a plain new run.
    """
    previous = store.load() if store is not None else None
    if previous is not None and previous.finished:
        run_id = previous.extra.get("mlflow_run_id")
        claim_finished(run_id, name)
        yield VariantRun(store, run_id, reused=True)
        return
    resumed_epoch = previous.epoch if previous is not None else 0
    with child_run(
        name,
        params,
        tags,
        resume_run_id=previous.extra.get("mlflow_run_id") if previous else None,
        resumed_from_epoch=resumed_epoch,
    ) as run_id:
        if store is not None:
            store.extra["mlflow_run_id"] = run_id
        logged = last_logged_step(run_id, "train_loss") if resumed_epoch else 0
        if previous is not None and run_id is not None and logged < resumed_epoch:
            log_history(previous.history, logged)  # a new run: no gap before the resume
            logged = resumed_epoch
        yield VariantRun(
            store,
            run_id,
            reused=False,
            resumed_from_epoch=resumed_epoch,
            callbacks=[MlflowMetrics(logged_through=logged)],
        )
