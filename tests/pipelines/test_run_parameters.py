"""A run's study grids are built once, from that run's parameters (``--params`` included)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import nested


def test_grid_is_built_once_from_the_run_parameters(
    kedro_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from cnn_lab import pipeline_registry
    from cnn_lab.runtime import hooks

    calls = []
    register = pipeline_registry.register_pipelines

    def counting_register():
        groups = hooks.run_parameters()["cnn_depth"]["groups"]
        calls.append({name: (g["families"], g["depths"]) for name, g in groups.items()})
        return register()

    monkeypatch.setattr(pipeline_registry, "register_pipelines", counting_register)
    override = {
        "cnn_depth.groups.mlp.families": ["resmlp"],
        "cnn_depth.groups.mlp.depths": [4],
        "cnn_depth.groups.cnn.families": ["cnn"],
        "cnn_depth.groups.cnn.depths": [8],
    }
    expected = {"mlp": (["resmlp"], [4]), "cnn": (["cnn"], [8])}
    bootstrap_project(kedro_project)
    with KedroSession.create(
        project_path=kedro_project, env="local", runtime_params=nested(override)
    ) as session:
        context = session.load_context()
        # The hooks read the parameters without building every study's pipelines.
        assert calls == []
        groups = hooks.run_parameters()["cnn_depth"]["groups"]
        assert {name: (g["families"], g["depths"]) for name, g in groups.items()} == expected
        assert hooks.run_env() == context.env == "local"

        training = [n.namespace for n in pipelines["cnn_depth"].nodes if "training" in n.tags]
    assert sorted(training) == ["cnn_depth.cnn.cnn_d8", "cnn_depth.mlp.resmlp_d4"]
    assert calls == [expected]
