"""Per-epoch checkpoints that let a killed run pick up where it stopped.

A checkpoint holds everything the next epoch depends on (model, optimizer, scheduler,
history so far, every RNG state including the batch-order generator), is written
atomically (a temporary file of its own, fsync, then rename) and loaded with
``weights_only=True``, so a checkpoint file can never run code. The previous good
checkpoint is kept, so a truncated latest file costs one epoch, not the run. A file lock
per variant key keeps two runs of one variant from training it at once: the second waits,
then reuses or resumes what the first left.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from filelock import FileLock, Timeout
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


class CheckpointDirError(OSError):
    """The checkpoint folder cannot be created or written."""


class CheckpointDiskFullError(OSError):
    """The disk filled up while a checkpoint was written; the previous one is intact."""


class CheckpointStore:
    """``<folder>/<label>-<key>.ckpt`` plus the previous good one as ``.prev.ckpt``.

    ``extra`` is written into every checkpoint (e.g. the MLflow run id to continue).
    ``setting`` names the parameter that chose ``folder``, for error messages.

    The first load, save or clear takes ``<label>-<key>.lock``; a finished checkpoint
    (saved or found) lets it go, as does :meth:`release` or the end of the process.
    Another process that wants the same variant meanwhile waits, then reads afresh
    whatever the holder left (so it reuses a finished variant instead of training it).
    """

    def __init__(
        self,
        folder: str | Path,
        key: str,
        label: str = "",
        setting: str = "<study>.checkpoint_dir",
    ) -> None:
        self.folder = Path(folder)
        self.key = key
        self.label = label
        self.setting = setting
        stem = f"{label}-{key}" if label else key
        self.stem = stem
        self.latest = self.folder / f"{stem}.ckpt"
        self.previous = self.folder / f"{stem}.prev.ckpt"
        self.lock_path = self.folder / f"{stem}.lock"
        self.extra: dict[str, Any] = {}
        self.source: Path | None = None  # the file the last load actually read
        self._loaded: tuple[bool, Checkpoint | None] = (False, None)
        self._lock: FileLock | None = None
        self._held = False
        if is_main_process():
            self._check_writable()

    def _check_writable(self) -> None:
        """Fail before any training, not after the first epoch, if checkpoints cannot land."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".write-test-"):
                pass
        except OSError as err:
            raise CheckpointDirError(
                f"checkpoint folder {self.folder} cannot be created or written "
                f"({err.strerror or err}). Nothing was trained. Point {self.setting} at a "
                "writable folder (e.g. --params=" + self.setting + "=data/06_models/my_ckpts) "
                "or fix the folder's permissions.",
            ) from None

    def acquire(self) -> None:
        """Hold this variant's lock, waiting (and saying so) while another run has it."""
        if not is_main_process() or self._held:
            return
        # One lock object per path in this process: a second store of the same variant
        # (a reuse check, then the training) must not wait for the first.
        lock = FileLock(self.lock_path, is_singleton=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            logger.warning(
                "[%s] another run is training this variant (it holds %s): waiting for it "
                "to finish; this run then reuses or resumes its checkpoint. Stop the other "
                "run to go ahead now.",
                self.label or self.key,
                self.lock_path,
            )
            lock.acquire()
            self._loaded = (False, None)  # the other run wrote while we waited
        self._lock, self._held = lock, True

    def release(self) -> None:
        """Let another run have this variant (also done on a finished checkpoint)."""
        if self._held and self._lock is not None:
            self._lock.release()
            self._held = False

    def save(self, checkpoint: Checkpoint) -> None:
        if not is_main_process():  # torchrun: rank 0 writes; the others only forget their copy
            self._loaded = (False, None)
            return
        self.acquire()
        self.folder.mkdir(parents=True, exist_ok=True)
        checkpoint.extra = {**checkpoint.extra, **self.extra}
        temporary = self._write_temporary(checkpoint)
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
        if checkpoint.finished:
            self.release()

    def _write_temporary(self, checkpoint: Checkpoint) -> Path:
        """The checkpoint in a temporary file only this call uses, fsynced; on any
        failure the file is removed and the checkpoints already there are untouched."""
        handle, name = tempfile.mkstemp(
            dir=self.folder, prefix=f"{self.stem}.{os.getpid()}.", suffix=".tmp"
        )
        temporary = Path(name)
        try:
            with os.fdopen(handle, "wb") as stream:
                torch.save(checkpoint.__dict__, stream)
                stream.flush()
                os.fsync(stream.fileno())
        except BaseException as err:
            temporary.unlink(missing_ok=True)
            if isinstance(err, Exception) and _is_disk_full(err, self.folder):
                raise self._disk_full(checkpoint) from None
            raise
        return temporary

    def _disk_full(self, checkpoint: Checkpoint) -> CheckpointDiskFullError:
        needed = _state_bytes(checkpoint.__dict__)
        free = shutil.disk_usage(self.folder).free
        kept = (
            f"the previous checkpoint {self.latest.name} is kept, so a rerun resumes from it"
            if self.latest.exists()
            else "no earlier checkpoint of this variant existed"
        )
        return CheckpointDiskFullError(
            f"disk full writing checkpoint {self.latest.name} to {self.folder}: it needs about "
            f"{needed:,} bytes ({needed / 2**20:.1f} MiB), {free:,} bytes are free; {kept} "
            "and no partial file was left. Free space there or set "
            f"{self.setting} to a disk with room, then rerun.",
        )

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
        self.acquire()
        if self._loaded[0]:
            return self._loaded[1]
        if is_distributed():
            found = broadcast_object(self._read_latest() if is_main_process() else None)
        else:
            found = self._read_latest()
        self._loaded = (True, found)
        if found is not None and found.finished:
            self.release()  # nothing more is written for a finished variant
        return found

    def _read_latest(self) -> Checkpoint | None:
        self.source = None
        present = [path for path in (self.latest, self.previous) if path.exists()]
        for path in present:
            found = self._read(path)
            if found is None:
                continue
            self.source = path
            if path == self.previous:
                logger.warning(
                    "[%s] latest checkpoint unreadable: using the previous one, %s (epoch %d%s)",
                    self.label or self.key,
                    path,
                    found.epoch,
                    ", finished" if found.finished else "",
                )
            return found
        if present:
            logger.warning(
                "[%s] no readable checkpoint left (%s): this variant retrains from scratch",
                self.label or self.key,
                ", ".join(path.name for path in present),
            )
        return None

    def clear(self) -> None:
        if is_main_process():  # torchrun: rank 0 deletes; every rank starts afresh
            self.acquire()  # never delete what another run is writing
            for path in (self.latest, self.previous):
                path.unlink(missing_ok=True)
        self._loaded = (True, None)


def _is_disk_full(err: BaseException, folder: Path) -> bool:
    """ENOSPC anywhere in the chain, or torch's zip writer failing (it hides the cause
    behind ``inline_container``) while the disk has next to nothing free."""
    chain: list[BaseException] = []
    seen: BaseException | None = err
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in chain):
        return True
    if any(isinstance(e, RuntimeError) and "inline_container" in str(e) for e in chain):
        try:
            return shutil.disk_usage(folder).free < 2**20
        except OSError:
            return False
    return False


def _state_bytes(value: Any) -> int:
    """Bytes of the tensors and arrays in a checkpoint: about what its file needs."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return sum(_state_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_state_bytes(item) for item in value)
    return 0


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
    test_labels: dict[str, list[int]] | None = None,
) -> None:
    """The finished variant, with its callbacks' final states (early stopping's best
    epoch...) and its test predictions, so a reuse reports exactly what the training run
    reported."""
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
                "test_labels": dict(test_labels or {}),
                "callbacks": callback_states(callbacks),
            },
            finished=True,
        )
    )


@dataclass
class TrainingState:
    """The live objects of a training run that a checkpoint saves and puts back
    (callbacks' state too, e.g. early stopping's best score, and fp16's loss scale)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    history: History
    callbacks: Sequence[Callback] = ()
    scaler: torch.amp.GradScaler | None = None


class EpochCheckpoint:
    """What :func:`~cnn_lab.training.engine.fit` calls to resume and to save each epoch.

    ``generators`` are the torch Generators the run draws from besides the global ones
    (the batch-order generator): without them a resumed run would see other batches.
    """

    def __init__(self, store: CheckpointStore, generators: dict[str, torch.Generator]) -> None:
        self.store = store
        self.generators = generators

    def restore(self, state: TrainingState) -> int:
        """Put ``state`` back as it was after the last complete epoch; returns that epoch
        (0: none)."""
        checkpoint = self.store.load()
        if checkpoint is None or checkpoint.finished:
            return 0
        state.model.load_state_dict(checkpoint.model)
        state.optimizer.load_state_dict(checkpoint.optimizer)
        if state.scheduler is not None and checkpoint.scheduler is not None:
            state.scheduler.load_state_dict(checkpoint.scheduler)
        restore_history(checkpoint, state.history)
        restore_rng_states(checkpoint.rng, self.generators)
        load_callback_states(state.callbacks, checkpoint.extra.get("callbacks", {}))
        if state.scaler is not None and checkpoint.extra.get("scaler"):
            state.scaler.load_state_dict(checkpoint.extra["scaler"])
        logger.info(
            "[%s] resuming after epoch %d from %s",
            self.store.label,
            checkpoint.epoch,
            (self.store.source or self.store.latest).name,
        )
        return checkpoint.epoch

    def save(self, epoch: int, state: TrainingState) -> None:
        model, optimizer, scheduler, history = (
            state.model,
            state.optimizer,
            state.scheduler,
            state.history,
        )
        extra: dict[str, Any] = {
            "history": history_state(history),
            "callbacks": callback_states(state.callbacks),
        }
        if state.scaler is not None:  # fp16: without its scale a resumed run skips other steps
            extra["scaler"] = state.scaler.state_dict()
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
