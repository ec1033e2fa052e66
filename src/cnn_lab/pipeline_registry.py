"""Every folder under ``pipelines/`` is a study, registered under its folder name."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    studies = find_pipelines(raise_errors=True)
    studies["__default__"] = studies.get("cnn_depth", Pipeline([]))
    return studies
