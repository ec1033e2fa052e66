"""Freezing presets, head/backbone parameter groups, the width option and checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cnn_lab.models import count_parameters
from cnn_lab.models.resnet import (
    build_resnet,
    feature_extractor,
    freeze_resnet,
    head_parameter_groups,
    replace_head,
)
from cnn_lab.training.optim import build_optimizer

TRAINABLE = {
    "head": ["fc"],
    "layer4": ["layer4", "fc"],
    "layer3": ["layer3", "layer4", "fc"],
    "layer2": ["layer2", "layer3", "layer4", "fc"],
    "all": ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"],
}


def _small(**options) -> nn.Module:
    torch.manual_seed(0)
    return build_resnet("resnet18", 5, cifar_stem=True, in_channels=1, width=4, **options)


@pytest.mark.parametrize("preset", list(TRAINABLE))
def test_presets_freeze_exactly_what_they_say(preset: str) -> None:
    model = _small()
    expected = sum(count_parameters(getattr(model, part)) for part in TRAINABLE[preset])
    freeze_resnet(model, preset)
    assert count_parameters(model, trainable_only=True) == expected
    for name, parameter in model.named_parameters():
        stage = name.split(".")[0]
        assert parameter.requires_grad == (stage in TRAINABLE[preset]), name


@pytest.mark.parametrize("preset", ["head", "layer4", "layer3"])
def test_frozen_tensors_are_bit_identical_after_a_step(preset: str) -> None:
    model = freeze_resnet(_small(), preset)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = build_optimizer(
        "sgd", head_parameter_groups(model, lr=0.5, backbone_lr_multiplier=1.0), lr=0.5
    )
    model.train()
    inputs, targets = torch.randn(16, 1, 8, 8), torch.randint(0, 5, (16,))
    nn.functional.cross_entropy(model(inputs), targets).backward()
    optimizer.step()
    after = model.state_dict()
    for name, tensor in before.items():
        stage = name.split(".")[0]
        if stage in TRAINABLE[preset]:
            continue
        # weights and BatchNorm running statistics alike
        assert torch.equal(tensor, after[name]), name
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    frozen_params = [p for n, p in model.named_parameters() if n.startswith("layer1")]
    assert all(p.grad is None for p in frozen_params)


def test_batch_norm_statistics_move_when_not_frozen() -> None:
    model = freeze_resnet(_small(), "head", freeze_bn_stats=False)
    before = model.layer1[0].bn1.running_mean.clone()
    model.train()
    model(torch.randn(8, 1, 8, 8) + 3)
    assert not torch.equal(before, model.layer1[0].bn1.running_mean)
    assert count_parameters(model, trainable_only=True) == count_parameters(model.fc)


def test_parameter_groups_carry_head_and_backbone_learning_rates() -> None:
    model = freeze_resnet(_small(), "layer4")
    groups = head_parameter_groups(model, lr=0.01, backbone_lr_multiplier=0.1)
    optimizer = build_optimizer("adamw", groups, lr=0.01)
    by_name = {g["name"]: g for g in optimizer.param_groups}
    assert by_name["head"]["lr"] == pytest.approx(0.01)
    assert by_name["backbone"]["lr"] == pytest.approx(0.001)
    head_ids = {id(p) for p in model.fc.parameters()}
    layer4_ids = {id(p) for p in model.layer4.parameters()}
    assert {id(p) for p in by_name["head"]["params"]} == head_ids
    assert {id(p) for p in by_name["backbone"]["params"]} == layer4_ids  # frozen ones left out
    head_only = head_parameter_groups(freeze_resnet(_small(), "head"), lr=0.01)
    assert [g["name"] for g in head_only] == ["head"]


def test_width_narrows_every_stage_and_features_are_pooled() -> None:
    model = _small()
    assert model.conv1.out_channels == 4
    assert [getattr(model, s)[0].conv1.out_channels for s in ("layer1", "layer4")] == [4, 32]
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 5)
    features = feature_extractor(model)(torch.randn(3, 1, 8, 8))
    assert features.shape == (3, 32)
    assert build_resnet("resnet18", 10).fc.in_features == 512  # torchvision's default
    with pytest.raises(ValueError, match="width 64"):
        build_resnet("resnet18", 10, weights="imagenet", width=16)


def test_dropout_head_keeps_checkpoint_keys() -> None:
    plain = replace_head(_small(), 3)
    with_dropout = replace_head(_small(), 3, dropout=0.4)
    with_dropout.load_state_dict(plain.state_dict())
    with_dropout.eval()
    plain.eval()
    x = torch.randn(4, 1, 8, 8)
    assert torch.allclose(with_dropout(x), plain(x))
    with_dropout.train()
    with_dropout.fc.p = 0.99
    assert not torch.allclose(with_dropout(x), plain(x))


def test_checkpoint_that_does_not_fit_names_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "wide.pt"
    torch.save(
        build_resnet("resnet18", 5, cifar_stem=True, in_channels=1, width=8).state_dict(), path
    )
    with pytest.raises(ValueError, match=r"layer1\.0\.conv1\.weight: checkpoint \(8, 8, 3, 3\)"):
        _small(weights=str(path))
    torch.save(_small().state_dict(), path)
    loaded = _small(weights=str(path))
    assert torch.equal(loaded.layer4[1].conv2.weight, _small().layer4[1].conv2.weight)


def _last_map(model: nn.Module, side: int) -> tuple[int, ...]:
    shapes = []
    model.layer4.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[-2:])))
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, side, side))
    return shapes[0]


@pytest.mark.parametrize(("output_stride", "side"), [(32, 2), (16, 4), (8, 8)])
def test_output_stride_sets_the_last_map_and_keeps_every_weight(
    output_stride: int, side: int
) -> None:
    """A CAM is as fine as the last map: 64-px images give 2x2 at torchvision's stride 32,
    4x4 at 16 and 8x8 at 8, with the same parameters, so weights move between them, and
    the build spec rebuilds the same stride (what ModelDataset loads)."""
    from cnn_lab.models import build_model, rebuild

    torch.manual_seed(0)
    standard = build_model("resnet", in_shape=(3, 64, 64), num_classes=5, width=8)
    model = build_model(
        "resnet",
        in_shape=(3, 64, 64),
        num_classes=5,
        width=8,
        output_stride=output_stride,
        weights=standard.state_dict(),
    )
    assert _last_map(model, 64) == (side, side)
    assert count_parameters(model) == count_parameters(standard)
    assert torch.equal(model.layer4[0].conv1.weight, standard.layer4[0].conv1.weight)
    assert model.build_spec["options"]["output_stride"] == output_stride
    assert _last_map(rebuild(model.build_spec), 64) == (side, side)


@pytest.mark.parametrize("output_stride", [4, 64, True, "16"])
def test_an_unknown_output_stride_names_the_allowed_ones(output_stride: object) -> None:
    with pytest.raises(ValueError, match=r"output_stride must be one of 32, 16, 8 .*got"):
        build_resnet("resnet18", 5, width=4, output_stride=output_stride)  # type: ignore[arg-type]
