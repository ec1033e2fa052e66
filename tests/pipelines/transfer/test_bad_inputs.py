"""Bad input fails before any training, with the key, the value and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from cnn_lab.models.resnet import build_resnet
from cnn_lab.pipelines.transfer import nodes
from cnn_lab.pipelines.transfer.pipeline import STUDY
from cnn_lab.study.params import ParameterError
from tests.conftest import PROJECT_ROOT, nested


def _base() -> dict[str, Any]:
    path = PROJECT_ROOT / "conf/base/parameters_transfer.yml"
    return yaml.safe_load(path.read_text())["transfer"]


def _with(overrides: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(_base())
    for key, value in nested(overrides)["transfer"].items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            _merge(raw[key], value)
        else:
            raw[key] = value
    return raw


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def test_base_parameters_are_valid() -> None:
    config = STUDY.validate(_base())
    assert config["finetune"]["presets"] == ["head", "layer4", "layer3", "all"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"transfer.finetune.presets": ["head", "layer5"]},
            "transfer.finetune.presets.1: got 'layer5'",
        ),
        (
            {"transfer.optimizers.names": ["adam", "lion"]},
            "transfer.optimizers.names.1: got 'lion'",
        ),
        ({"transfer.finetune.optimizer": "adagrad"}, "transfer.finetune.optimizer: got 'adagrad'"),
        (
            {"transfer.search.lr.low": 0.1, "transfer.search.lr.high": 0.01},
            "transfer.search.lr: got {'low': 0.1, 'high': 0.01}; low (0.1) must be below high",
        ),
        (
            {"transfer.search.dropout.low": 0.5, "transfer.search.dropout.high": 0.5},
            "transfer.search.dropout: got {'low': 0.5, 'high': 0.5}; low (0.5) must be below",
        ),
        ({"transfer.search.pruner": "asha"}, "transfer.search.pruner: got 'asha'"),
        ({"transfer.baselines.svm.solver": "smo"}, "transfer.baselines.svm.solver: got 'smo'"),
        ({"transfer.target.classes": [5, 12]}, "classes [12] do not exist in digits"),
        ({"transfer.target.dataset": "cifar100"}, "source dataset digits has 1 channel(s)"),
        ({"transfer.finetune.epohcs": 3}, "transfer.finetune.epohcs: unknown key"),
    ],
)
def test_bad_parameters_are_reported_with_their_key(override: dict, expected: str) -> None:
    with pytest.raises(ParameterError, match="invalid parameter") as info:
        STUDY.validate(_with(override))
    assert expected in str(info.value)


def test_batch_size_larger_than_the_training_split() -> None:
    config = STUDY.validate(_with({"transfer.search.batch_sizes": [16, 4096]}))
    source, target = nodes.prepare_data(config)
    with pytest.raises(ParameterError, match=r"transfer\.search\.batch_sizes\[1\]: 4096") as info:
        nodes.split_data(source, target, config)
    assert "target training split (5" in str(info.value)


def test_checkpoint_that_does_not_fit_names_keys(tmp_path: Path) -> None:
    path = tmp_path / "source.pt"
    wide = build_resnet("resnet18", 5, cifar_stem=True, in_channels=1, width=8)
    torch.save(wide.state_dict(), path)
    config = _with({"transfer.source.weights": str(path)})  # base width is 16
    with pytest.raises(ParameterError, match=r"transfer\.source\.weights: .*does not fit") as info:
        STUDY.validate(config)
    assert "layer1.0.conv1.weight: checkpoint (8, 8, 3, 3) vs model (16, 16, 3, 3)" in str(
        info.value
    )
    missing = _with({"transfer.source.weights": str(tmp_path / "nope.pt")})
    with pytest.raises(ParameterError, match="nope.pt does not exist"):
        STUDY.validate(missing)


def test_fitting_checkpoint_is_loaded_instead_of_training(tmp_path: Path) -> None:
    path = tmp_path / "source.pt"
    model = build_resnet("resnet18", 5, cifar_stem=True, in_channels=1, width=4)
    torch.save(model.state_dict(), path)
    config = STUDY.validate(
        _with({"transfer.source.weights": str(path), "transfer.model.width": 4})
    )
    source, _ = nodes.prepare_data(config)
    loaded, result = nodes.train_source(source, {}, config)
    assert result["trained"] is False
    assert torch.equal(loaded.layer3[0].conv1.weight, model.layer3[0].conv1.weight)


def test_missing_data_without_download_is_a_clear_error() -> None:
    config = STUDY.validate(
        _with(
            {
                "transfer.source.task.dataset": "cifar10",
                "transfer.source.task.classes": [],
                "transfer.target.dataset": "cifar100",
                "transfer.target.classes": [],
                "transfer.data.root": "nowhere",
            }
        )
    )
    with pytest.raises(FileNotFoundError, match=r"cifar10 was not found under nowhere") as info:
        nodes.prepare_data(config)
    assert "transfer.data.root" in str(info.value) and "transfer.data.download" in str(info.value)


def test_imagenet_weights_offline_say_which_parameter_to_set(monkeypatch, tmp_path: Path) -> None:
    from torchvision.models import ResNet18_Weights

    from cnn_lab.models.resnet import WeightsUnavailableError

    def offline(*args, **kwargs):
        raise OSError("no route to host")

    monkeypatch.setattr(type(ResNet18_Weights.DEFAULT), "get_state_dict", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    config = STUDY.validate(
        _with({"transfer.source.weights": "imagenet", "transfer.model.width": 64})
    )
    source, _ = nodes.prepare_data(config)
    with pytest.raises(
        WeightsUnavailableError, match=r"transfer\.source\.weights: 'imagenet' weights"
    ) as info:
        nodes.train_source(source, {}, config)
    assert "resnet18-f37072fd.pth" in str(
        info.value
    ) and "set transfer.source.weights to a local checkpoint" in str(info.value)
