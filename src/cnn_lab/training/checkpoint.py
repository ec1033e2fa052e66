"""Per-epoch checkpoints that let a killed run pick up where it stopped.

A checkpoint holds everything the next epoch depends on (model, optimizer, scheduler,
history so far, every RNG state including the batch-order generator), is written
atomically (temporary file, fsync, then rename) and loaded with ``weights_only=True``, so
a checkpoint file can never run code. The previous good checkpoint is kept, so a
truncated latest file costs one epoch, not the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from cnn_lab.training.distributed import broadcast_object, is_distributed, is_main_process

if TYPE_CHECKING:
    from cnn_lab.training.callbacks import Callback
    from cnn_lab.training.engine import History

logger = logging.getLogger(__name__)

# Test-only: "<epoch>" or "<label>:<epoch>" SIGKILLs the process right after that epoch's
# checkpoint is written (see ``_kill_hook``), so kill-and-resume tests need no racing sleeps.
KILL_ENV = "CNN_LAB_KILL_AFTER_EPOCH"


def parameters_key(*parts: Any) -> str:
    """A short stable hash of a variant's effective parameters and its data split, so a
    checkpoint is only ever resumed by the run that would have produced it."""
    blob = json.dumps(parts, sort_keys=True, default=_jsonable).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def fingerprint(*values: Any) -> str:
    """A hash of arrays, tensors and dicts of tensors by content (for inputs, such as the
    images of a split or source weights, that a node gets as data, not as indices)."""
    digest = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                digest.update(str(key).encode())
                feed(value[key])
        elif isinstance(value, torch.Tensor):
            feed(value.detach().cpu().contiguous().numpy())
        elif isinstance(value, np.ndarray):
            digest.update(f"{value.dtype}{value.shape}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        else:
            digest.update(repr(value).encode())

    for value in values:
        feed(value)
    return digest.hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return value.__dict__
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def rng_states(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Python, NumPy, torch (CPU and CUDA) and the named generators' states, in types
    that ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        # numpy's legacy state tuple holds an ndarray: stored as a tensor for weights_only.
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    for key, generator in generators.items():
        generator.set_state(states["generators"][key])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


@dataclass
class Checkpoint:
    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    history: list[dict[str, float]]
    rng: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    finished: bool = False


class CheckpointStore:
    """``<folder>/<label>-<key>.ckpt`` plus the previous good one as ``.prev.ckpt``.

    ``extra`` is written into every checkpoint (e.g. the MLflow run id to continue).
    """

    def __init__(self, folder: str | Path, key: str, label: str = "") -> None:
        self.folder = Path(folder)
        self.key = key
        self.label = label
        stem = f"{label}-{key}" if label else key
        self.latest = self.folder / f"{stem}.ckpt"
        self.previous = self.folder / f"{stem}.prev.ckpt"
        self.extra: dict[str, Any] = {}
        self._loaded: tuple[bool, Checkpoint | None] = (False, None)

    def save(self, checkpoint: Checkpoint) -> None:
        if not is_main_process():  # torchrun: rank 0 writes; the others only forget their copy
            self._loaded = (False, None)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        checkpoint.extra = {**checkpoint.extra, **self.extra}
        temporary = self.latest.with_suffix(".tmp")
        with open(temporary, "wb") as handle:
            torch.save(checkpoint.__dict__, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if checkpoint.finished:
            # The fallback only serves a run still training; a finished variant keeps
            # one file (a ResNet-50's previous epoch with its optimizer is ~300 MB).
            os.replace(temporary, self.latest)
            self.previous.unlink(missing_ok=True)
        else:
            if self.latest.exists():
                os.replace(self.latest, self.previous)
            os.replace(temporary, self.latest)
        self._loaded = (False, None)  # the saved tensors are live: a later load rereads

    def _read(self, path: Path) -> Checkpoint | None:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            return Checkpoint(**payload)
        except Exception as err:  # truncated, corrupted or unsafe: any unpickling error
            logger.warning("checkpoint %s is unreadable (%s); ignoring it", path, err)
            return None

    def load(self) -> Checkpoint | None:
        """The newest readable checkpoint, falling back to the previous one (read once).

        Under torchrun rank 0 reads and sends what it found to every rank, so all resume
        from the same epoch even without a shared filesystem (every rank must call this).
        """
        if self._loaded[0]:
            return self._loaded[1]
        if is_distributed():
            found = broadcast_object(self._read_latest() if is_main_process() else None)
        else:
            found = self._read_latest()
        self._loaded = (True, found)
        return found

    def _read_latest(self) -> Checkpoint | None:
        found = None
        for path in (self.latest, self.previous):
            if path.exists():
                found = self._read(path)
                if found is not None:
                    if path == self.previous:
                        logger.warning(
                            "latest checkpoint unreadable: resuming from the previous one, %s "
                            "(epoch %d)",
                            path,
                            found.epoch,
                        )
                    break
        return found

    def clear(self) -> None:
        if is_main_process():  # torchrun: rank 0 deletes; every rank starts afresh
            for path in (self.latest, self.previous):
                path.unlink(missing_ok=True)
        self._loaded = (True, None)


def history_state(history: History) -> dict[str, Any]:
    return {
        "diverged_epoch": history.diverged_epoch,
        "stopped_epoch": history.stopped_epoch,
        "train_seconds": history.train_seconds,
        "steps": history.steps,
    }


def restore_history(checkpoint: Checkpoint, history: History) -> None:
    history.epochs = [dict(row) for row in checkpoint.history]
    for name, value in checkpoint.extra.get("history", {}).items():
        setattr(history, name, value)


def record_finished(
    store: CheckpointStore,
    model: nn.Module,
    history: History,
    scores: dict[str, float],
    callbacks: Sequence[Callback] = (),
) -> None:
    """The finished variant, with its callbacks' final states (early stopping's best
    epoch...), so a reuse reports exactly what the training run reported."""
    store.save(
        Checkpoint(
            epoch=len(history.epochs),
            model=model.state_dict(),
            optimizer={},
            scheduler=None,
            history=[dict(row) for row in history.epochs],
            rng={},
            extra={
                "history": history_state(history),
                "test": dict(scores),
                "callbacks": callback_states(callbacks),
            },
            finished=True,
        )
    )


class EpochCheckpoint:
    """What :func:`~cnn_lab.training.engine.fit` calls to resume and to save each epoch.

    ``generators`` are the torch Generators the run draws from besides the global ones
    (the batch-order generator): without them a resumed run would see other batches.
    """

    def __init__(self, store: CheckpointStore, generators: dict[str, torch.Generator]) -> None:
        self.store = store
        self.generators = generators

    def restore(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        history: History,
        callbacks: Sequence[Callback] = (),
        scaler: torch.amp.GradScaler | None = None,
    ) -> int:
        """Put the state after the last complete epoch back (callbacks' too, e.g. early
        stopping's best score, and fp16's loss scale); returns that epoch (0: none)."""
        checkpoint = self.store.load()
        if checkpoint is None or checkpoint.finished:
            return 0
        model.load_state_dict(checkpoint.model)
        optimizer.load_state_dict(checkpoint.optimizer)
        if scheduler is not None and checkpoint.scheduler is not None:
            scheduler.load_state_dict(checkpoint.scheduler)
        restore_history(checkpoint, history)
        restore_rng_states(checkpoint.rng, self.generators)
        load_callback_states(callbacks, checkpoint.extra.get("callbacks", {}))
        if scaler is not None and checkpoint.extra.get("scaler"):
            scaler.load_state_dict(checkpoint.extra["scaler"])
        logger.info(
            "[%s] resuming after epoch %d from %s",
            self.store.label,
            checkpoint.epoch,
            self.store.latest.name,
        )
        return checkpoint.epoch

    def save(
        self,
        epoch: int,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        history: History,
        callbacks: Sequence[Callback] = (),
        scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        states = callback_states(callbacks)
        extra: dict[str, Any] = {"history": history_state(history), "callbacks": states}
        if scaler is not None:  # fp16: without its scale a resumed run skips other steps
            extra["scaler"] = scaler.state_dict()
        self.store.save(
            Checkpoint(
                epoch=epoch,
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict() if scheduler is not None else None,
                history=[dict(row) for row in history.epochs],
                rng=rng_states(self.generators),
                extra=extra,
            )
        )
        _kill_hook(self.store.label, epoch)


def _callback_keys(callbacks: Sequence[Callback]) -> dict[str, Callback]:
    """Class name and rank among callbacks of that class: stable when callbacks without
    state (e.g. MLflow logging, absent when a finished variant is reused) come and go."""
    keys: dict[str, Callback] = {}
    for callback in callbacks:
        name = type(callback).__name__
        rank = sum(key.startswith(f"{name}:") for key in keys)
        keys[f"{name}:{rank}"] = callback
    return keys


def callback_states(callbacks: Sequence[Callback]) -> dict[str, Any]:
    return {
        key: state
        for key, callback in _callback_keys(callbacks).items()
        if (state := callback.state_dict()) is not None
    }


def load_callback_states(callbacks: Sequence[Callback], states: dict[str, Any]) -> None:
    for key, callback in _callback_keys(callbacks).items():
        if key in states:
            callback.load_state_dict(states[key])


def _kill_hook(label: str, epoch: int) -> None:
    """TEST-ONLY: die like a killed process once ``epoch`` is safely on disk."""
    target = os.environ.get(KILL_ENV)
    if not target:
        return
    wanted_label, _, wanted_epoch = target.rpartition(":")
    if str(epoch) == wanted_epoch and wanted_label in ("", label):
        os.kill(os.getpid(), signal.SIGKILL)
