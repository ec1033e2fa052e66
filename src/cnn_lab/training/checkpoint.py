"""Per-epoch checkpoints that let a killed run pick up where it stopped.

A checkpoint holds everything the next epoch depends on (model, optimizer, scheduler,
history so far, every RNG state including the batch-order generator), is written
atomically (temporary file, then rename) and loaded with ``weights_only=True``. The
previous good checkpoint is kept, so a truncated latest file costs one epoch, not the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


def parameters_key(*parts: Any) -> str:
    """A short stable hash of a variant's effective parameters and its data split, so a
    checkpoint is only ever resumed by the run that would have produced it."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def rng_states(generators: dict[str, torch.Generator]) -> dict[str, Any]:
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
    version, state = states["python"][0], tuple(states["python"][1])
    random.setstate((version, state, states["python"][2]))
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
    """``<folder>/<key>.ckpt`` plus the previous good one as ``<key>.prev.ckpt``."""

    def __init__(self, folder: str | Path, key: str) -> None:
        self.folder = Path(folder)
        self.key = key
        self.latest = self.folder / f"{key}.ckpt"
        self.previous = self.folder / f"{key}.prev.ckpt"

    def save(self, checkpoint: Checkpoint) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.latest.with_suffix(".tmp")
        torch.save(checkpoint.__dict__, temporary)
        if self.latest.exists():
            os.replace(self.latest, self.previous)
        os.replace(temporary, self.latest)

    def _read(self, path: Path) -> Checkpoint | None:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            return Checkpoint(**payload)
        except Exception as err:  # truncated or corrupted: any unpickling error
            logger.warning("checkpoint %s is unreadable (%s); ignoring it", path, err)
            return None

    def load(self) -> Checkpoint | None:
        """The newest readable checkpoint, falling back to the previous one."""
        for path in (self.latest, self.previous):
            if path.exists():
                checkpoint = self._read(path)
                if checkpoint is not None:
                    if path == self.previous:
                        logger.warning("resuming from the previous checkpoint %s", path)
                    return checkpoint
        return None

    def clear(self) -> None:
        for path in (self.latest, self.previous):
            path.unlink(missing_ok=True)
