"""The modernised ResNet of the artworks study: GELU for ReLU, depthwise 3x3 convolutions
in the residual blocks and CBAM in every block, on top of the shared torchvision builder
(so heads, stems and freezing presets behave exactly as for the plain ResNets)."""

from __future__ import annotations

from torch import nn

from cnn_lab.models.blocks import modernise_blocks, swap_activations
from cnn_lab.models.registry import Surgery, register_family
from cnn_lab.models.resnet import RESNET_SURGERY, build_resnet


def build_modern_resnet(
    arch: str = "resnet50",
    num_classes: int = 10,
    *,
    cifar_stem: bool = False,
    in_channels: int = 3,
    reduction: int = 16,
    spatial_kernel: int = 7,
    gelu: bool = True,
    depthwise: bool = True,
    cbam: bool = True,
) -> nn.Module:
    """Randomly initialised: depthwise convolutions and CBAM have no ImageNet weights."""
    model = build_resnet(
        arch, num_classes, weights="none", cifar_stem=cifar_stem, in_channels=in_channels
    )
    modernise_blocks(
        model, depthwise=depthwise, cbam=cbam, reduction=reduction, spatial_kernel=spatial_kernel
    )
    if gelu:
        swap_activations(model, nn.GELU)
    return model


# No named weights: depthwise convolutions and CBAM have no pretrained ones.
MODERN_SURGERY = Surgery(
    load_backbone=RESNET_SURGERY.load_backbone,
    replace_head=RESNET_SURGERY.replace_head,
    freeze=RESNET_SURGERY.freeze,
    freeze_presets=RESNET_SURGERY.freeze_presets,
)


@register_family("resnet_modern", MODERN_SURGERY)
def resnet_modern_family(
    in_shape: tuple[int, ...],
    num_classes: int,
    arch: str = "resnet50",
    cifar_stem: bool = False,
    reduction: int = 16,
    spatial_kernel: int = 7,
) -> nn.Module:
    return build_modern_resnet(
        arch,
        num_classes,
        cifar_stem=cifar_stem,
        in_channels=in_shape[0],
        reduction=reduction,
        spatial_kernel=spatial_kernel,
    )
