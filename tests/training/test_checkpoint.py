"""Checkpoints: kill-and-resume matches an uninterrupted run, finished variants are
reused, truncated files fall back, and unsafe pickles are refused."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from cnn_lab.training.checkpoint import KILL_ENV, Checkpoint, CheckpointStore, parameters_key

SCRIPT = Path(__file__).with_name("resume_script.py")


def _run(
    folder: Path, epochs: int, kill: str | None = None, *extra: str
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill:
        env[KILL_ENV] = kill
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(folder), str(epochs), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _result(process: subprocess.CompletedProcess) -> dict:
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An uninterrupted 4-epoch run."""
    result = _result(_run(tmp_path_factory.mktemp("reference"), 4))
    assert result["trained_epochs"] == 4
    return result


def _same_run(left: dict, right: dict) -> None:
    for key in ("history", "test", "weights"):
        assert left[key] == right[key], key  # exact: bit-identical on CPU


def test_killed_run_resumes_to_the_same_result(tmp_path: Path, reference: dict) -> None:
    killed = _run(tmp_path, 4, kill="tiny:2")
    assert killed.returncode == -9  # SIGKILL, right after epoch 2 was saved
    store_files = sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock")
    assert len(store_files) == 2 and not any(n.endswith(".tmp") for n in store_files)

    resumed = _result(_run(tmp_path, 4))
    assert resumed["trained_epochs"] == 2  # epochs 3 and 4 only
    _same_run(resumed, reference)

    again = _result(_run(tmp_path, 4))
    assert again["trained_epochs"] == 0  # finished: reused, not retrained
    _same_run(again, reference)


def test_kill_in_the_middle_of_an_epoch_resumes_from_the_last_complete_one(
    tmp_path: Path, reference: dict
) -> None:
    """8 batches per epoch: batch 13 is the middle of epoch 2, so epoch 1 is on disk and
    half of epoch 2 is lost; the rerun redoes epoch 2 from epoch 1's state."""
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    killed = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "4"],
        env={**env, "KILL_AT_BATCH": "13"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9
    assert len(list(tmp_path.glob("*.ckpt"))) == 1  # epoch 1 only; no .prev yet, no .tmp
    resumed = _result(_run(tmp_path, 4))
    assert resumed["trained_epochs"] == 3  # epochs 2, 3 and 4
    _same_run(resumed, reference)


def test_early_stopping_state_survives_a_kill(tmp_path: Path) -> None:
    """Killed between its best epoch (1) and its stop (3), a resumed run must still stop
    at epoch 3 with epoch 1's weights: patience and best weights live in the checkpoint."""
    early = ("step", "early")
    reference = _result(_run(tmp_path / "reference", 8, None, *early))
    assert reference["stopped_epoch"] == 3 and reference["trained_epochs"] == 3

    assert _run(tmp_path / "killed", 8, "tiny:2", *early).returncode == -9
    resumed = _result(_run(tmp_path / "killed", 8, None, *early))
    assert resumed["trained_epochs"] == 1  # epoch 3 only, then the patience ran out
    assert resumed["stopped_epoch"] == 3
    _same_run(resumed, reference)


def test_truncated_checkpoint_falls_back_to_the_previous_one(
    tmp_path: Path, reference: dict
) -> None:
    assert _run(tmp_path, 4, kill="tiny:3").returncode == -9
    (latest,) = [p for p in tmp_path.glob("*.ckpt") if not p.name.endswith(".prev.ckpt")]
    latest.write_bytes(latest.read_bytes()[:200])  # a write cut short

    process = _run(tmp_path, 4)
    resumed = _result(process)
    assert "unreadable" in process.stderr and "previous" in process.stderr
    assert resumed["trained_epochs"] == 2  # from epoch 2's checkpoint: epochs 3 and 4
    _same_run(resumed, reference)


def test_changed_parameters_never_resume() -> None:
    base = {"lr": 0.01, "epochs": 4}
    assert parameters_key(base, [1, 2]) == parameters_key(dict(reversed(base.items())), [1, 2])
    assert parameters_key(base, [1, 2]) != parameters_key({**base, "lr": 0.02}, [1, 2])
    assert parameters_key(base, [1, 2]) != parameters_key(base, [1, 3])  # another split


def _checkpoint(epoch: int) -> Checkpoint:
    return Checkpoint(epoch, {"w": torch.full((2,), float(epoch))}, {}, None, [], {})


def test_store_keeps_the_previous_checkpoint(tmp_path: Path, caplog) -> None:
    store = CheckpointStore(tmp_path, "k", label="v")
    for epoch in (1, 2):
        store.save(_checkpoint(epoch))
    store.latest.write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        loaded = CheckpointStore(tmp_path, "k", label="v").load()
    assert loaded is not None and loaded.epoch == 1
    assert "previous" in caplog.text
    store.clear()
    assert CheckpointStore(tmp_path, "k", label="v").load() is None


def test_finished_variant_keeps_one_file(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "k", label="v")
    for epoch in (1, 2):
        store.save(_checkpoint(epoch))
    assert store.previous.exists()
    store.save(replace(_checkpoint(3), finished=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v-k.ckpt", "v-k.lock"]
    finished = CheckpointStore(tmp_path, "k", label="v").load()
    assert finished is not None and finished.finished and finished.epoch == 3


class _Evil:
    """Unpickling this writes a file: what a hostile checkpoint would do."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return pathlib.Path.write_text, (self.target, "pwned")


def test_malicious_pickle_is_refused(tmp_path: Path, caplog) -> None:
    from cnn_lab.models.resnet import load_weights

    target = tmp_path / "pwned.txt"
    store = CheckpointStore(tmp_path, "k", label="v")
    torch.save({**_checkpoint(1).__dict__, "model": {"w": _Evil(target)}}, store.latest)

    with caplog.at_level(logging.WARNING):
        assert store.load() is None
    assert "unreadable" in caplog.text
    assert not target.exists()
    with pytest.raises(Exception, match="(?i)weights"):
        load_weights("resnet18", str(store.latest))
    assert not target.exists()

    torch.load(store.latest, weights_only=False)  # proves the payload is live
    assert target.read_text() == "pwned"
