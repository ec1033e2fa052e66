"""The one model factory: weights, head replacement, freezing presets and build_spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from cnn_lab.models import FAMILIES, Head, build_model, count_parameters, rebuild
from cnn_lab.models.resnet import FREEZE_PRESETS, DropoutLinear

# Small options for every registered family: the round trip must cover each of them.
SMALL: dict[str, dict[str, Any]] = {
    "cnn": {"in_shape": (3, 16, 16), "depth": 4, "width": 4},
    "rescnn": {"in_shape": (3, 16, 16), "depth": 4, "width": 4, "batch_norm": True},
    "cifar_resnet": {"in_shape": (3, 8, 8), "depth": 8, "width": 4},
    "cifar_plain": {"in_shape": (3, 8, 8), "depth": 8, "width": 4},
    "gap_cnn": {"in_shape": (3, 16, 16), "widths": (4, 8), "dropout": 0.1},
    "mlp": {"in_shape": (1, 4, 4), "depth": 3, "width": 8},
    "mlp_bn": {"in_shape": (1, 4, 4), "depth": 3, "width": 8},
    "resmlp": {"in_shape": (1, 4, 4), "depth": 3, "width": 8},
    "net_a1": {"in_shape": (1, 12, 12)},
    "net_a2": {"in_shape": (1, 12, 12)},
    "resnet": {"in_shape": (1, 8, 8), "width": 4, "cifar_stem": True},
    "resnet_modern": {"in_shape": (3, 8, 8), "arch": "resnet18", "cifar_stem": True},
}
STAGES = ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]
TRAINABLE = {"head": 6, "layer4": 5, "layer3": 4, "layer2": 3, "all": 0}  # first trainable


def _resnet(**surgery: Any) -> nn.Module:
    torch.manual_seed(0)
    return build_model("resnet", num_classes=5, **SMALL["resnet"], **surgery)


def _trainable_stages(model: nn.Module) -> set[str]:
    return {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}


def test_a_state_dict_loads_every_tensor_but_the_head() -> None:
    source = _resnet()
    for tensor in source.state_dict().values():
        if tensor.is_floating_point():
            tensor.add_(1.0)  # source values no fresh network has
    torch.manual_seed(1)
    target = build_model("resnet", num_classes=3, weights=source.state_dict(), **SMALL["resnet"])
    for name, tensor in target.state_dict().items():
        if name.startswith("fc."):
            assert tensor.shape[0] == 3, name  # the source's 5-way head does not fit
        else:
            assert torch.equal(tensor, source.state_dict()[name]), name


def test_a_state_dict_of_another_architecture_is_refused_naming_keys() -> None:
    wide = build_model("resnet", num_classes=5, **(SMALL["resnet"] | {"width": 8}))
    with pytest.raises(ValueError, match=r"checkpoint source does not fit.*layer1\.0\.conv1"):
        _resnet(weights=wide.state_dict(), weights_key="source")


def test_named_weights_are_read_from_a_checkpoint_file(tmp_path: Path) -> None:
    path = tmp_path / "source.pt"
    torch.save(_resnet().state_dict(), path)
    loaded = build_model("resnet", num_classes=5, weights=str(path), **SMALL["resnet"])
    for name, tensor in _resnet().state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    with pytest.raises(FileNotFoundError, match="source.weights: checkpoint .* does not exist"):
        _resnet(weights=str(tmp_path / "missing.pt"), weights_key="source.weights")


@pytest.mark.parametrize("head", [Head(3, dropout=0.4), {"num_classes": 3, "dropout": 0.4}])
def test_the_head_is_replaced_after_the_weights(head: Head | dict[str, Any]) -> None:
    source = _resnet()
    model = _resnet(weights=source.state_dict(), head=head)
    assert isinstance(model.fc, DropoutLinear)
    assert (model.fc.out_features, model.fc.p) == (3, 0.4)
    assert torch.equal(model.layer4[0].conv1.weight, source.layer4[0].conv1.weight)


def test_a_head_the_same_as_replace_head_gives_the_same_numbers() -> None:
    from cnn_lab.models.resnet import build_resnet, replace_head

    torch.manual_seed(0)
    by_hand = replace_head(build_resnet("resnet18", 5, cifar_stem=True, in_channels=1, width=4), 3)
    by_factory = _resnet(head=Head(3))
    for name, tensor in by_hand.state_dict().items():
        assert torch.equal(by_factory.state_dict()[name], tensor), name


@pytest.mark.parametrize("preset", list(FREEZE_PRESETS))
def test_presets_leave_exactly_the_later_stages_trainable(preset: str) -> None:
    model = _resnet(freeze=preset)
    assert _trainable_stages(model) == set(STAGES[TRAINABLE[preset] :])


def test_frozen_batch_norm_statistics_follow_freeze_bn_stats() -> None:
    from torchvision.ops.misc import FrozenBatchNorm2d

    assert isinstance(_resnet(freeze="layer4").layer3[0].bn1, FrozenBatchNorm2d)
    assert isinstance(_resnet(freeze="layer4", freeze_bn_stats=False).layer3[0].bn1, nn.BatchNorm2d)
    assert isinstance(_resnet(freeze="layer4").layer4[0].bn1, nn.BatchNorm2d)


@pytest.mark.parametrize("family", ["cnn", "mlp", "net_a1", "resnet_modern"])
def test_freezing_all_is_a_no_op_for_every_family(family: str) -> None:
    model = build_model(family, num_classes=3, freeze="all", **SMALL[family])
    assert count_parameters(model, trainable_only=True) == count_parameters(model)


def test_unknown_family_names_the_allowed_ones() -> None:
    with pytest.raises(
        ValueError,
        match="unknown model family 'vit'; allowed: cifar_plain, cifar_resnet, cnn, .*resnet",
    ):
        build_model("vit", in_shape=(3, 8, 8), num_classes=3)


def test_unknown_preset_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="preset 'layer5' .* allowed: all, layer2, layer3"):
        _resnet(freeze="layer5")
    with pytest.raises(ValueError, match="preset 'head' for model family 'cnn'; allowed: all$"):
        build_model("cnn", num_classes=3, freeze="head", **SMALL["cnn"])


def test_surgery_a_family_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="'mlp' cannot replace its head"):
        build_model("mlp", num_classes=3, head=Head(2), **SMALL["mlp"])
    with pytest.raises(ValueError, match="'mlp' cannot load weights"):
        build_model("mlp", num_classes=3, weights="imagenet", **SMALL["mlp"])
    with pytest.raises(ValueError, match="'resnet_modern' has no named weights"):
        build_model("resnet_modern", num_classes=3, weights="imagenet", **SMALL["resnet_modern"])


def test_every_registered_family_has_small_options_here() -> None:
    assert set(FAMILIES) == set(SMALL)


@pytest.mark.parametrize("family", sorted(SMALL))
def test_build_spec_rebuilds_the_same_architecture(family: str) -> None:
    model = build_model(family, num_classes=3, **SMALL[family])
    spec = json.loads(json.dumps(model.build_spec))  # as a checkpoint stores it
    assert spec["family"] == family
    rebuild(spec).load_state_dict(model.state_dict(), strict=True)


def test_build_spec_keeps_head_and_freezing_but_not_weights() -> None:
    source = _resnet()
    model = _resnet(weights=source.state_dict(), head=Head(3, 0.2), freeze="layer3")
    spec = json.loads(json.dumps(model.build_spec))
    assert "weights" not in spec["options"]
    assert spec["options"]["head"] == {"num_classes": 3, "dropout": 0.2}
    rebuilt = rebuild(spec)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert _trainable_stages(rebuilt) == _trainable_stages(model) == {"layer3", "layer4", "fc"}
    assert rebuilt.fc.p == 0.2


def test_missing_weights_fail_naming_the_fallback_unless_it_is_allowed(monkeypatch) -> None:
    from cnn_lab.models import resnet
    from cnn_lab.models.factory import weights_missing

    def offline(arch: str, weights: str, *, key: str = "weights"):
        raise resnet.WeightsUnavailableError(f"{key}: 'imagenet' weights could not be had")

    monkeypatch.setattr(resnet, "load_weights", offline)
    check = {"key": "m.options.weights", "scratch_key": "m.scratch_if_weights_missing"}
    with pytest.raises(resnet.WeightsUnavailableError, match=r"or set m\.scratch_if_weights"):
        weights_missing("resnet", {"weights": "imagenet"}, scratch=False, **check)
    assert weights_missing("resnet", {"weights": "imagenet"}, scratch=True, **check)
    assert not weights_missing("resnet", {"weights": "none"}, scratch=False, **check)
    assert not weights_missing("gap_cnn", {}, scratch=False, **check)
