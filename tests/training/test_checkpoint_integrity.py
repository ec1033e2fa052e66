"""Checkpoint writes that two runs, a full disk or a bad folder cannot spoil: unique
temporary files, a lock per variant, the folder checked up front, one clear disk-full
error with nothing partial left, and logs that name the file actually used."""

from __future__ import annotations

import errno
import logging
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from cnn_lab.training.checkpoint import (
    Checkpoint,
    CheckpointDirError,
    CheckpointDiskFullError,
    CheckpointStore,
    EpochCheckpoint,
    TrainingState,
)
from cnn_lab.training.engine import History


def _checkpoint(epoch: int, finished: bool = False) -> Checkpoint:
    return Checkpoint(
        epoch, {"w": torch.full((256,), float(epoch))}, {}, None, [], {}, {}, finished
    )


def test_each_write_uses_its_own_temporary_file(tmp_path: Path, monkeypatch) -> None:
    """Two processes writing one variant once shared ``<name>.tmp``: one renamed the
    other's file away and crashed. Each write now has a name of its own."""
    store = CheckpointStore(tmp_path, "k", label="v")
    seen: list[str] = []
    real_save = torch.save

    def spying_save(obj: Any, stream: Any, *args: Any, **kwargs: Any) -> None:
        seen.extend(p.name for p in tmp_path.glob("*.tmp"))
        real_save(obj, stream, *args, **kwargs)

    monkeypatch.setattr(torch, "save", spying_save)
    store.save(_checkpoint(1))
    store.save(_checkpoint(2))
    assert len(seen) == 2 and len(set(seen)) == 2
    assert all(name.startswith("v-k.") and name != "v-k.tmp" for name in seen)
    assert not list(tmp_path.glob("*.tmp"))


def test_unwritable_folder_fails_when_the_store_is_made(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    folder = blocker / "checkpoints"
    with pytest.raises(CheckpointDirError) as caught:
        CheckpointStore(folder, "k", label="v", setting="cnn_depth.checkpoint_dir")
    message = str(caught.value)
    assert str(folder) in message and "cnn_depth.checkpoint_dir" in message
    assert "Nothing was trained" in message


def _disk_full_saver(wrapped_by_torch: bool):
    def save(obj: Any, stream: Any, *args: Any, **kwargs: Any) -> None:
        stream.write(b"x" * 4096)  # a partial write before the disk fills
        full = OSError(errno.ENOSPC, "No space left on device")
        if not wrapped_by_torch:
            raise full
        raise RuntimeError(
            "[enforce fail at inline_container.cc:672] . unexpected pos 4096 vs 4032"
        ) from full

    return save


@pytest.mark.parametrize("wrapped_by_torch", [False, True])
def test_disk_full_is_one_clear_error_and_keeps_the_previous_epoch(
    tmp_path: Path, monkeypatch, wrapped_by_torch: bool
) -> None:
    store = CheckpointStore(tmp_path, "k", label="v", setting="cnn_depth.checkpoint_dir")
    store.save(_checkpoint(1))
    monkeypatch.setattr(torch, "save", _disk_full_saver(wrapped_by_torch))

    with pytest.raises(CheckpointDiskFullError) as caught:
        store.save(_checkpoint(2))

    message = str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert str(tmp_path) in message and "cnn_depth.checkpoint_dir" in message
    assert f"{256 * 4:,} bytes" in message  # the state being written: 256 float32
    assert "v-k.ckpt is kept" in message
    assert not list(tmp_path.glob("*.tmp"))
    monkeypatch.undo()
    kept = CheckpointStore(tmp_path, "k", label="v").load()
    assert kept is not None and kept.epoch == 1


def test_other_write_errors_are_not_called_disk_full(tmp_path: Path, monkeypatch) -> None:
    store = CheckpointStore(tmp_path, "k", label="v")

    def failing_save(obj: Any, stream: Any, *args: Any, **kwargs: Any) -> None:
        stream.write(b"partial")
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="Input/output") as caught:
        store.save(_checkpoint(1))
    assert not isinstance(caught.value, CheckpointDiskFullError)
    assert not list(tmp_path.glob("*.tmp"))


def _trained_epoch(store: CheckpointStore, epoch: int) -> None:
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    EpochCheckpoint(store, {}).save(epoch, TrainingState(model, optimizer, None, History()))


def test_resume_log_names_the_file_actually_used(tmp_path: Path, caplog) -> None:
    store = CheckpointStore(tmp_path, "k", label="v")
    _trained_epoch(store, 1)
    _trained_epoch(store, 2)
    store.latest.write_bytes(store.latest.read_bytes()[:100])  # a write cut short

    resumed = CheckpointStore(tmp_path, "k", label="v")
    model = nn.Linear(2, 2)
    with caplog.at_level(logging.INFO):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        epoch = EpochCheckpoint(resumed, {}).restore(
            TrainingState(model, optimizer, None, History())
        )
    assert epoch == 1
    assert "resuming after epoch 1 from v-k.prev.ckpt" in caplog.text


def test_finished_variant_with_a_truncated_checkpoint(tmp_path: Path, caplog) -> None:
    store = CheckpointStore(tmp_path, "k", label="v")
    store.save(_checkpoint(3, finished=True))
    store.latest.write_bytes(store.latest.read_bytes()[:100])

    with caplog.at_level(logging.WARNING):
        assert CheckpointStore(tmp_path, "k", label="v").load() is None
    assert "retrains from scratch" in caplog.text

    # A finished previous file is a good fallback: reused, and the log says which.
    torch.save(replace(_checkpoint(3), finished=True).__dict__, store.previous)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        found = CheckpointStore(tmp_path, "k", label="v").load()
    assert found is not None and found.finished and found.epoch == 3
    assert "v-k.prev.ckpt" in caplog.text and "finished" in caplog.text


_SECOND_RUN = textwrap.dedent(
    """
    import logging, sys
    from cnn_lab.training.checkpoint import CheckpointStore
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    found = CheckpointStore(sys.argv[1], "k", label="v").load()
    print("finished" if found is not None and found.finished else "none", flush=True)
    """
)


def test_a_second_run_of_the_variant_waits_then_reuses_it(tmp_path: Path) -> None:
    folder, log = tmp_path / "checkpoints", tmp_path / "second.log"
    first = CheckpointStore(folder, "k", label="v")
    first.save(_checkpoint(1))  # training: holds the variant's lock
    with log.open("w") as stderr:
        second = subprocess.Popen(
            [sys.executable, "-c", _SECOND_RUN, str(folder)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while "another run" not in log.read_text() and time.monotonic() < deadline:
                assert second.poll() is None, log.read_text()
                time.sleep(0.1)
            first.save(_checkpoint(2, finished=True))  # finished: the lock is let go
            out, _ = second.communicate(timeout=60)
        finally:
            second.kill()
    err = log.read_text()
    assert "another run is training this variant" in err and "v-k.lock" in err
    assert out.strip() == "finished"  # reused what the first run finished, not retrained
