from __future__ import annotations

import pytest
import torch
from torch import nn

from cnn_lab.models import build_model, count_parameters
from cnn_lab.models.blocks import CBAM, ChannelAttention, SpatialAttention, residual_blocks
from cnn_lab.models.resnet import freeze_resnet
from cnn_lab.models.resnet_modern import build_modern_resnet
from cnn_lab.models.resnet_variants import build_variant

TINY_MODEL = {
    "arch": "resnet18",
    "cifar_stem": False,
    "freeze_bn_stats": True,
    "cbam_reduction": 16,
    "spatial_kernel": 7,
}


def test_cbam_keeps_the_shape_and_its_attention_maps_are_in_0_1() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 32, 9, 7) * 10
    cbam = CBAM(32, reduction=16, kernel_size=7)
    out = cbam(x)
    assert out.shape == x.shape
    channel = cbam.channel.attention(x)
    spatial = cbam.spatial.attention(cbam.channel(x))
    assert channel.shape == (2, 32, 1, 1) and spatial.shape == (2, 1, 9, 7)
    for attention in (channel, spatial):
        assert attention.min() >= 0 and attention.max() <= 1
    torch.testing.assert_close(out, x * channel * spatial)
    assert cbam.channel.mlp[0].out_channels == 2  # 32 // 16


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ChannelAttention(8, reduction=0), "reduction must be >= 1"),
        (lambda: SpatialAttention(4), "kernel_size must be odd"),
    ],
)
def test_bad_attention_settings_are_refused(build, message) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_modern_resnet50_builds_and_runs_forward() -> None:
    torch.manual_seed(0)
    model = build_model("resnet_modern", in_shape=(3, 64, 64), num_classes=7)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7)
    blocks = residual_blocks(model)
    assert len(blocks) == 16  # ResNet-50: 3 + 4 + 6 + 3 bottlenecks
    for block in blocks:
        assert block.conv2.groups == block.conv2.in_channels  # depthwise 3x3
        assert isinstance(block.bn3.cbam, CBAM)
    assert not any(isinstance(m, nn.ReLU) for n, m in model.named_modules() if "cbam" not in n)
    assert any(isinstance(m, nn.GELU) for m in model.modules())
    plain = build_model("resnet", in_shape=(3, 64, 64), num_classes=7, arch="resnet50")
    assert count_parameters(model) < count_parameters(plain)  # depthwise is cheaper


def test_modernising_a_model_without_residual_blocks_is_refused() -> None:
    from cnn_lab.models.blocks import modernise_blocks

    with pytest.raises(ValueError, match="found no residual blocks"):
        modernise_blocks(nn.Sequential(nn.Conv2d(3, 3, 3)))


def _trainable(model: nn.Module) -> set[str]:
    return {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    ("variant", "trainable"),
    [
        ("scratch", {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}),
        ("freeze_1_3", {"layer4", "fc"}),
        ("freeze_1_4", {"fc"}),
        ("modern", {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}),
    ],
)
def test_variants_freeze_the_stages_they_name(variant: str, trainable: set[str]) -> None:
    model = build_variant(variant, num_classes=3, model=TINY_MODEL, weights=None)
    assert _trainable(model) == trainable


def test_frozen_stages_of_the_modern_variant_keep_batchnorm_statistics() -> None:
    torch.manual_seed(0)
    model = freeze_resnet(build_modern_resnet("resnet18", 3), "layer4")
    before = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    model.train()
    model(torch.randn(4, 3, 32, 32))
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("layer4") for k in changed)


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown variant 'vit'; allowed: scratch, finetune"):
        build_variant("vit", num_classes=3, model=TINY_MODEL, weights=None)
