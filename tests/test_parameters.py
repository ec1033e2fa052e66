"""Every study validates its parameters first, rejects unknown keys, and reports every
problem at once with its key path, the value given and what is allowed."""

from __future__ import annotations

import copy
import importlib

import pytest

from cnn_lab.runtime.hooks import default_parameters
from cnn_lab.study.params import ParameterError

STUDIES = ["cnn_depth", "init_study", "cam", "transfer", "artworks"]


@pytest.mark.parametrize("study", STUDIES)
def test_validation_runs_before_every_other_node(study: str) -> None:
    pipeline = importlib.import_module(f"cnn_lab.pipelines.{study}.pipeline").create_pipeline()
    (validate,) = [n for n in pipeline.nodes if "validate" in n.name]
    assert validate.inputs == [f"params:{study}"]
    downstream = {n.name for n in pipeline.from_nodes(validate.name).nodes}
    assert downstream == {n.name for n in pipeline.nodes}


def _validate(study: str, params: dict) -> dict:
    """A study ported onto the kit validates through its ``Study``; the others' node."""
    declared = getattr(
        importlib.import_module(f"cnn_lab.pipelines.{study}.pipeline"), "STUDY", None
    )
    if declared is not None and not isinstance(declared, str):
        return declared.validate(params)
    return importlib.import_module(f"cnn_lab.pipelines.{study}.nodes").validate_config(params)


@pytest.mark.parametrize("study", STUDIES)
def test_defaults_pass_and_unknown_keys_fail(study: str) -> None:
    params = copy.deepcopy(default_parameters(study))
    _validate(study, params)
    params["seeed"] = 1
    with pytest.raises(ParameterError, match=rf"{study}\.seeed: unknown key \(given 1\)"):
        _validate(study, params)


def test_every_kind_of_problem_in_one_message() -> None:
    params = copy.deepcopy(default_parameters("cnn_depth"))
    params["training"]["lr"] = "fast"  # type
    params["data"]["val_ratio"] = 1.5  # range
    params["training"]["optimizer"] = "adamm"  # allowed name
    params["training"]["epohcs"] = 3  # unknown key (a typo)
    params["resume"] = "perhaps"  # type (bool)
    with pytest.raises(ParameterError) as info:
        _validate("cnn_depth", params)
    message = str(info.value)
    assert message.startswith("5 invalid parameter(s) in 'cnn_depth'")
    for expected in (
        "cnn_depth.training.lr: got 'fast'; Input should be a valid number",
        "cnn_depth.data.val_ratio: got 1.5; Input should be less than 1",
        "cnn_depth.training.optimizer: got 'adamm'; Input should be 'adam', 'sgd'",
        "cnn_depth.training.epohcs: unknown key (given 3)",
        "cnn_depth.resume: got 'perhaps'; Input should be a valid boolean",
    ):
        assert expected in message
