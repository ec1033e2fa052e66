"""MLflow helpers for nested runs; kedro-mlflow owns the parent run of each ``kedro run``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import mlflow
from matplotlib.figure import Figure


@contextmanager
def child_run(
    name: str, params: Mapping[str, Any], tags: Mapping[str, str]
) -> Iterator[str | None]:
    """A nested run under the active run, yielding its id; ``None`` when tracking is off."""
    if mlflow.active_run() is None:
        yield None
        return
    with mlflow.start_run(run_name=name, nested=True, tags=dict(tags)) as run:
        mlflow.log_params({k: _param_value(v) for k, v in params.items()})
        yield run.info.run_id


def _param_value(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def log_figures(figures: Mapping[str, Figure], folder: str = "figures") -> None:
    if mlflow.active_run() is None:
        return
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"{folder}/{name}.png")


def log_table(table: Any, artifact_file: str) -> None:
    """A pandas table as a CSV artifact of the active run."""
    if mlflow.active_run() is None:
        return
    mlflow.log_text(table.to_csv(index=False), artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    if mlflow.active_run() is None:
        return
    mlflow.log_text(text, artifact_file)


def active_run_id() -> str | None:
    """The run kedro-mlflow opened for this ``kedro run`` (the parent of variant runs)."""
    run = mlflow.active_run()
    return run.info.run_id if run is not None else None
