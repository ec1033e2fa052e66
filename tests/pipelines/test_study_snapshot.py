"""Every study's graph, as built from conf/base, is what ``snapshots/<study>.json`` recorded:
node names, dataset names (parameters included), each node's tags and the namespaces.
A grid with ``seeds: [0, 1]`` is recorded too for two studies, since seeds change names.

After an intended change: ``UPDATE_SNAPSHOTS=1 pytest -n 0 tests/pipelines/test_study_snapshot.py``
and commit the JSON (see tests/pipelines/snapshot.py).
"""

from __future__ import annotations

import copy
import importlib
from functools import cache
from typing import Any

import pytest

from cnn_lab.runtime import hooks
from tests.pipelines.snapshot import assert_matches_snapshot

STUDIES = ["cnn_depth", "transfer", "cam", "init_study", "artworks"]
SEEDED = {"cnn_depth": [0, 1], "transfer": [0, 1]}


@cache
def _base_parameters() -> dict[str, Any]:
    from kedro.config import OmegaConfigLoader

    from cnn_lab.settings import CONFIG_LOADER_ARGS
    from tests.conftest import PROJECT_ROOT

    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"), env="base", **CONFIG_LOADER_ARGS
    )
    return dict(loader["parameters"])


def base_parameters() -> dict[str, Any]:
    return copy.deepcopy(_base_parameters())


def graph(study: str) -> dict[str, Any]:
    """What the refactor must keep of the study's pipeline, as JSON-ready lists."""
    module = importlib.import_module(f"cnn_lab.pipelines.{study}.pipeline")
    pipeline = module.create_pipeline()
    names = sorted(n.name for n in pipeline.nodes)
    assert len(names) == len(set(names)), f"{study}: duplicate node names"
    return {
        "nodes": names,
        "datasets": sorted(pipeline.datasets()),
        "tags": {n.name: sorted(n.tags) for n in sorted(pipeline.nodes, key=lambda n: n.name)},
        "namespaces": sorted({n.namespace for n in pipeline.nodes if n.namespace}),
    }


CASES = [(study, None) for study in STUDIES] + list(SEEDED.items())


@pytest.mark.parametrize(
    ("study", "seeds"),
    CASES,
    ids=[s if seeds is None else f"{s}-seeds_{'_'.join(map(str, seeds))}" for s, seeds in CASES],
)
def test_study_graph_matches_snapshot(
    study: str, seeds: list[int] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    parameters = base_parameters()
    key = "graph"
    if seeds is not None:
        parameters[study]["seeds"] = seeds
        key = f"graph_seeds_{'_'.join(map(str, seeds))}"
    monkeypatch.setattr(hooks, "_run_parameters", parameters)
    assert_matches_snapshot(study, key, graph(study))


def test_snapshots_differ_with_seeds() -> None:
    """The seeded grids are not the default one again (a seed loop lost would pass)."""
    from tests.pipelines.snapshot import load, updating

    if updating():
        pytest.skip("snapshots being rewritten")
    for study, seeds in SEEDED.items():
        recorded = load(study)
        key = f"graph_seeds_{'_'.join(map(str, seeds))}"
        assert recorded[key]["nodes"] != recorded["graph"]["nodes"], study
