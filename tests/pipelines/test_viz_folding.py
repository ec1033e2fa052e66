"""What plain ``kedro viz`` opens on: each study folded into one box. kedro-viz folds the
nodes of a namespace, and lays every dataset that no node reads out at the top level,
beside the box; so every node sits in its study's namespace, and few datasets are left
unread (the depth study's analysis reads every variant's weights, not only the one it maps).
"""

from __future__ import annotations

import importlib
import math
import pkgutil

import pytest
import torch

import cnn_lab.pipelines
from cnn_lab.runtime import hooks
from cnn_lab.study.reporting import first_finite
from tests.pipelines.test_study_snapshot import STUDIES, base_parameters


def _pipeline(study: str, monkeypatch: pytest.MonkeyPatch, seeds: list[int] | None = None):
    parameters = base_parameters()
    if seeds is not None:
        parameters[study]["seeds"] = seeds
    monkeypatch.setattr(hooks, "_run_parameters", parameters)
    return importlib.import_module(f"cnn_lab.pipelines.{study}.pipeline").create_pipeline()


def test_every_registered_study_is_checked() -> None:
    """The registry registers every package under ``pipelines/`` as a study."""
    packages = [m.name for m in pkgutil.iter_modules(cnn_lab.pipelines.__path__) if m.ispkg]
    assert sorted(packages) == sorted(STUDIES)


@pytest.mark.parametrize("study", STUDIES)
def test_every_node_sits_in_its_study_namespace(
    study: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = _pipeline(study, monkeypatch)
    outside = [
        (n.name, n.namespace)
        for n in pipeline.nodes
        if n.namespace != study and not (n.namespace or "").startswith(f"{study}.")
    ]
    assert not outside, f"{study}: nodes kedro-viz would not fold into the study: {outside}"
    # The namespace composes the same full names: <study>.<step>, <study>.<variant>.train
    assert all(n.name == f"{n.namespace}.{n.name.rsplit('.', 1)[-1]}" for n in pipeline.nodes)
    assert f"{study}.validate_parameters" in {n.name for n in pipeline.nodes}


def test_depth_study_leaves_few_datasets_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = _pipeline("cnn_depth", monkeypatch)
    training = [n for n in pipeline.nodes if "training" in n.tags]
    assert len(training) == 18
    free = pipeline.outputs()
    assert not any(name.endswith(".weights") for name in free), sorted(free)
    assert len(free) <= 8, sorted(free)
    assert {"cnn_depth.report.html", "cnn_depth.report.md"} <= free


@pytest.mark.parametrize("seeds", [None, [0, 1]])
def test_depth_analysis_maps_the_deepest_variant_of_the_first_group(
    seeds: list[int] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The picker reads every variant's weights, ranked so the first is the model it has
    always mapped: the first family of the first group at its largest depth, first seed."""
    pipeline = _pipeline("cnn_depth", monkeypatch, seeds)
    (picker,) = [n for n in pipeline.nodes if n.name == "cnn_depth.analysis_model"]
    candidates = picker.func.keywords["candidates"]
    weights = [name for name in picker.inputs if name.endswith(".weights")]
    assert weights == [v.dataset("weights") for v in candidates]
    assert len(weights) == (18 if seeds is None else 36)
    lead = candidates[0]
    same_run = [v for v in candidates if v.group == lead.group and v.seed == lead.seed]
    assert lead.name == "mlp_d32" and lead["depth"] == max(v["depth"] for v in same_run)
    assert lead.seed == (0 if seeds is None else seeds[0])


def _state(value: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((2, 2), value), "steps": torch.tensor(3)}


def test_first_finite_skips_diverged_weights() -> None:
    def pick(data: str, state: dict, *, variant: str) -> tuple:
        return data, variant, float(state["w"][0, 0])

    states = [_state(math.nan), _state(math.inf), _state(2.0), _state(3.0)]
    picked = first_finite("digits", *states, pick=pick, candidates="abcd", fixed=1)
    assert picked == ("digits", "c", 2.0)
    assert first_finite("digits", *states[2:], pick=pick, candidates="cd", fixed=1)[1] == "c"
    # Every candidate diverged: the first one, as before the check.
    assert first_finite("x", *states[:2], pick=pick, candidates="ab", fixed=1)[1] == "a"
    with pytest.raises(ValueError, match="3 weights for 2 candidate variants"):
        first_finite("x", *states[:3], pick=pick, candidates="ab", fixed=1)
