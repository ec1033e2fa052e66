"""Training progress as people see it: one short line per epoch in a piped log, a live
display of the variants and epochs in a terminal; and the MLflow runs-table view."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from kedro.logging import RichHandler
from rich.console import Console

from cnn_lab.runtime import console
from cnn_lab.training.callbacks import LINE_WIDTH, EpochProgress
from tests.test_console import _kedro_run


def test_an_epoch_line_fits_the_width_and_keeps_the_variant_name() -> None:
    epoch = EpochProgress("cnn_depth.mlp.mlp_d8", 3, 20, loss=0.41234, val=0.8721, seconds=0.42)
    assert epoch.line() == "[cnn_depth.mlp.mlp_d8] 3/20 loss 0.412 val 0.872 0.4s"
    seeded = EpochProgress("cnn_depth.mlp.mlp_bn_d32_s2", 20, 20, 0.412, 0.872, 1.2)
    assert seeded.line() == "[cnn_depth..mlp_bn_d32_s2] 20/20 loss 0.412 val 0.872 1.2s"
    longest = EpochProgress("transfer.optimizers.rmsprop_lr3e-03_s2", 20, 20, 12.5, 0.5, 123.4)
    assert longest.line() == "[rmsprop_lr3e-03_s2] 20/20 loss 12.5 val 0.500 123.4s"
    assert all(len(e.line()) <= LINE_WIDTH for e in (seeded, longest))
    assert EpochProgress("cam.small_cnn", 1, 2).line() == "[cam.small_cnn] 1/2"
    assert EpochProgress("m" * 70, 1, 2).line() == f"[{'m' * 70}] 1/2"  # nothing to drop


def _record(epoch: EpochProgress | None, message: str = "") -> logging.LogRecord:
    extra = {"epoch_progress": epoch} if epoch else None
    return logging.getLogger("cnn_lab.training.callbacks").makeRecord(
        "cnn_lab.training.callbacks", logging.INFO, __file__, 1, message, (), None, extra=extra
    )


def test_in_a_terminal_the_bars_show_variants_and_epochs_instead_of_lines() -> None:
    stream = io.StringIO()
    terminal = Console(file=stream, force_terminal=True, width=100)
    live = console.LiveProgress(terminal, variants=2, title="cnn_depth")
    live.start()
    live.variant_started("cnn_depth.mlp.mlp_d8")
    epoch = EpochProgress("cnn_depth.mlp.mlp_d8", 3, 20, loss=0.412, val=0.872, seconds=0.4)
    assert live.filter(_record(epoch, epoch.line())) is False  # shown by the bar, not logged
    assert live.filter(_record(None, "[cnn_depth.mlp.mlp_d8] test_accuracy 0.9")) is True
    live.variant_done()
    live.progress.refresh()
    variants, epochs = live.progress.tasks
    live.stop()
    assert (variants.completed, variants.total, variants.description) == (1, 2, "cnn_depth")
    assert (epochs.completed, epochs.total) == (3, 20)
    assert epochs.description == "[cnn_depth.mlp.mlp_d8]"
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    assert "[cnn_depth.mlp.mlp_d8]" in text and "3/20" in text
    assert "loss 0.412 val 0.872" in text and "1/2" in text


@pytest.fixture
def console_handler(monkeypatch: pytest.MonkeyPatch):
    """A Kedro RichHandler on the root logger, writing to a console the test chooses."""

    def install(terminal: bool) -> RichHandler:
        handler = RichHandler(markup=True, show_path=False)
        handler.console = Console(file=io.StringIO(), force_terminal=terminal, width=100)
        monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
        return handler

    return install


def _pipeline() -> Any:
    from kedro.pipeline import Pipeline, node

    def train(*inputs: Any) -> Any:
        return inputs[0]

    nodes = [
        node(train, "a", "b", name="train", namespace="cnn_depth.mlp.mlp_d4"),
        node(train, "a", "c", name="train", namespace="cnn_depth.mlp.mlp_d8"),
        node(train, ["b", "c"], "d", name="cnn_depth.summarise"),
    ]
    return Pipeline(nodes)


def test_the_display_starts_only_on_a_terminal_and_for_nodes_run_here(console_handler) -> None:
    console_handler(terminal=False)
    assert console.live_progress(_pipeline(), {"runner": "SequentialRunner"}) is None
    handler = console_handler(terminal=True)
    assert console.live_progress(_pipeline(), {"runner": "ParallelRunner"}) is None
    live = console.live_progress(_pipeline(), {"runner": "SequentialRunner"})
    assert live is not None and live in handler.filters
    try:
        assert live.progress.tasks[0].total == 2  # the two namespaced train nodes
        assert live.progress.tasks[0].description == "cnn_depth"
    finally:
        console._end_live(live)
    assert live not in handler.filters


def test_a_piped_run_prints_one_short_line_per_epoch_with_the_variant(
    kedro_project: Path,
) -> None:
    done = _kedro_run(
        kedro_project,
        "--to-nodes=cnn_depth.mlp.mlp_bn_d32.train",
        "--params=cnn_depth.training.epochs=2",
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    lines = out.splitlines()
    epochs = [i for i, line in enumerate(lines) if "[cnn_depth.mlp.mlp_bn_d32] " in line]
    epoch_lines = [lines[i] for i in epochs if re.search(r"\] [12]/2 loss ", lines[i])]
    assert len(epoch_lines) == 2, out[-3000:]
    for line in epoch_lines:
        assert len(line) <= 80, line
        assert re.search(r" val \d\.\d{3} \d+\.\ds$", line.rstrip()), line  # not wrapped


class FakeClient:
    """The part of MlflowClient the view set-up uses, over one variant run."""

    def __init__(self) -> None:
        self.tags: dict[str, str] = {"mlflow.experimentKind": "custom_model_development"}
        params = {"family": "mlp", "depth": "4", "group": "mlp", "width": "128", "lr": "0.001"}
        params["parameters"] = "10"
        metrics = {"test_accuracy": 0.9, "train_seconds": 1.0, "val_loss": 0.3}
        self.run = SimpleNamespace(data=SimpleNamespace(params=params, metrics=metrics))

    def get_run(self, run_id: str) -> Any:
        return self.run

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self.tags[key] = value

    def get_experiment(self, experiment_id: str) -> Any:
        return SimpleNamespace(tags=dict(self.tags))


def test_each_study_gets_a_runs_table_view_and_a_line_in_the_description() -> None:
    summary = pd.DataFrame(
        {
            "variant": ["mlp_d4", "resmlp_d8"],
            "group": ["mlp", "mlp"],
            "family": ["mlp", "resmlp"],
            "depth": [4, 8],
            "width": [128, 128],
            "parameters": [10, 20],
            "test_accuracy": [0.9, 0.95],
            "mlflow_run_id": ["r1", "r2"],
        }
    )
    client = FakeClient()
    url = console.present_columns(client, "7", "cnn_depth", summary, "parent")
    assert url == "http://127.0.0.1:5000/#/experiments/7/runs?viewStateShareKey=cnn_depth"
    view = json.loads(client.tags["mlflow.sharedViewState.cnn_depth"])
    assert view == {
        "selectedColumns": [
            "params.`family`",
            "params.`depth`",
            "params.`parameters`",
            "metrics.`test_accuracy`",
            "metrics.`train_seconds`",
        ],
        "orderByKey": "metrics.`test_accuracy`",
        "orderByAsc": False,
        "runsExpanded": {"parent": True},
    }
    client.tags["cnn_lab.view.cam"] = "cam: params model; metrics test_accuracy (...)"
    console.present_columns(client, "7", "cnn_depth", summary, "parent")
    note = client.tags["mlflow.note.content"]
    assert "- cam: params model" in note
    assert "- cnn_depth: params family, depth, parameters; metrics test_accuracy" in note
    assert note.index("- cam") < note.index("- cnn_depth")
