"""Every study validates its parameters first, rejects unknown keys, and reports every
problem at once with its key path, the value given and what is allowed."""

from __future__ import annotations

import copy
import importlib

import pytest

from cnn_lab.runtime.hooks import default_parameters
from cnn_lab.study.params import ParameterError
from cnn_lab.study.spec import Study

STUDIES = ["cnn_depth", "init_study", "cam", "transfer", "artworks"]


@pytest.mark.parametrize("study", STUDIES)
def test_validation_runs_before_every_other_node(study: str) -> None:
    pipeline = importlib.import_module(f"cnn_lab.pipelines.{study}.pipeline").create_pipeline()
    (validate,) = [n for n in pipeline.nodes if "validate" in n.name]
    assert validate.inputs == [f"params:{study}"]
    downstream = {n.name for n in pipeline.from_nodes(validate.name).nodes}
    assert downstream == {n.name for n in pipeline.nodes}


def _validate(study: str, params: dict) -> dict:
    declared = getattr(
        importlib.import_module(f"cnn_lab.pipelines.{study}.pipeline"), "STUDY", None
    )
    if isinstance(declared, Study):  # a study declared on the study kit
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


def test_every_problem_in_one_message_each_naming_its_key(monkeypatch) -> None:
    """A scheduler check, an options typo and a bad value are reported together; each line
    names its own key (not the whole block), and a --params value says so."""
    import copy

    from cnn_lab.pipelines.cnn_depth.pipeline import STUDY
    from cnn_lab.runtime import hooks
    from cnn_lab.study.params import ParameterError
    from tests.conftest import PROJECT_ROOT

    monkeypatch.chdir(PROJECT_ROOT)
    raw = copy.deepcopy(hooks.run_parameters()["cnn_depth"])
    raw["training"]["optimizer"] = "adamm"
    raw["groups"]["cnn"]["training"] = {"scheduler": "multistep"}
    raw["groups"]["mlp"]["model"] = {"widht": 64}
    monkeypatch.setattr(
        hooks, "_runtime_parameters", {"cnn_depth": {"training": {"optimizer": "adamm"}}}
    )
    with pytest.raises(ParameterError) as info:
        STUDY.validate(raw)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("3 invalid parameter(s) in 'cnn_depth'")
    keys = [line.strip().split(":")[0] for line in lines[1:]]
    assert sorted(keys) == [
        "cnn_depth.groups.cnn.training.milestones",
        "cnn_depth.groups.mlp.model.widht",
        "cnn_depth.training.optimizer",
    ]
    optimizer = next(line for line in lines if "optimizer" in line)
    assert optimizer.endswith("(given with --params)")
    assert "{" not in str(info.value)  # no block printed whole
