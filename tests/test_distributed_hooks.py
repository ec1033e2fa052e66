"""Kedro under torchrun: ranks other than 0 write nothing and leave MLflow alone.

The hooks read the rank from the environment torchrun sets; these tests set it by hand
(the 2-process training itself is covered by tests/training/test_distributed.py).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro_datasets.pickle import PickleDataset

from cnn_lab.runtime.distributed_hooks import (
    MLFLOW_PLUGIN_NAMES,
    DistributedRunHooks,
    plugins_to_disable,
)


def _as_rank(monkeypatch: pytest.MonkeyPatch, rank: int) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))


def _double(x: int) -> int:
    return 2 * x


def _run_hook(tmp_path: Path) -> tuple[DataCatalog, Path]:
    target = tmp_path / "doubled.pkl"
    catalog = DataCatalog({"doubled": PickleDataset(filepath=str(target))})
    pipeline = Pipeline([node(_double, "x", "doubled")])
    DistributedRunHooks().before_pipeline_run({}, pipeline, catalog)
    catalog.save("doubled", 42)
    return catalog, target


def test_other_ranks_keep_outputs_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as_rank(monkeypatch, 1)
    catalog, target = _run_hook(tmp_path)
    assert isinstance(catalog["doubled"], MemoryDataset)
    assert catalog.load("doubled") == 42  # later nodes of the same run still get it
    assert not target.exists()


@pytest.mark.parametrize("rank", [None, 0])
def test_rank_zero_and_single_process_write_as_usual(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rank: int | None
) -> None:
    if rank is not None:
        _as_rank(monkeypatch, rank)
    catalog, target = _run_hook(tmp_path)
    assert isinstance(catalog["doubled"], PickleDataset)
    assert target.exists()


def test_kedro_mlflow_is_disabled_on_other_ranks_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert plugins_to_disable() == ()
    _as_rank(monkeypatch, 0)
    assert plugins_to_disable() == ()
    _as_rank(monkeypatch, 1)
    assert plugins_to_disable() == MLFLOW_PLUGIN_NAMES
    # Kedro matches the installed distribution's name exactly.
    installed = importlib.metadata.distribution("kedro-mlflow").metadata["Name"]
    assert installed in MLFLOW_PLUGIN_NAMES
