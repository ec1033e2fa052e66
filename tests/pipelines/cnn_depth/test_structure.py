"""The graph kedro-viz shows: one namespaced training node per variant of the grid."""

from __future__ import annotations

import pytest

from cnn_lab.pipelines.cnn_depth.pipeline import create_pipeline
from cnn_lab.runtime import hooks


@pytest.fixture
def grid(monkeypatch: pytest.MonkeyPatch):
    def set_grid(groups: dict) -> None:
        monkeypatch.setattr(hooks, "_run_parameters", {"cnn_depth": {"groups": groups}})

    return set_grid


def test_one_namespaced_training_node_per_variant(grid) -> None:
    grid({"mlp": {"families": ["mlp", "resmlp"], "depths": "4 8 16"}})
    pipeline = create_pipeline()
    training = [n for n in pipeline.nodes if "training" in n.tags]
    assert sorted(n.namespace for n in training) == sorted(
        f"cnn_depth.mlp.{f}_d{d}" for f in ("mlp", "resmlp") for d in (4, 8, 16)
    )
    # Every variant reads the shared, persisted split and writes its own outputs.
    for n in training:
        assert "cnn_depth.split" in n.inputs
        assert all(o.startswith(n.namespace + ".") for o in n.outputs)


def test_malformed_grid_builds_no_variants_and_leaves_the_error_to_validation(grid) -> None:
    grid({"mlp": {"families": "mlp", "depths": {"not": "a list"}}})
    names = [n.name for n in create_pipeline().nodes]
    assert "cnn_depth.validate_parameters" in names
    assert not any(name.endswith(".train") for name in names)
