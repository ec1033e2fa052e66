"""The five ways the artworks study trains a ResNet, and how each is built.

The variant table is the study's design (its parameters name these variants); the
builder is the shared factory (:func:`build_model`), which also applies the freezing
preset, so the table lives beside the models it builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from cnn_lab.models import build_model


@dataclass(frozen=True)
class VariantKind:
    family: str  # model registry family
    pretrained: bool  # needs weights (ImageNet or a checkpoint)
    freeze: str  # freezing preset of models.resnet.FREEZE_PRESETS
    description: str


VARIANTS: dict[str, VariantKind] = {
    "scratch": VariantKind("resnet", False, "all", "random init, all layers trained"),
    "finetune": VariantKind("resnet", True, "all", "pretrained, all layers trained"),
    "freeze_1_3": VariantKind("resnet", True, "layer4", "pretrained, stages 1-3 frozen"),
    "freeze_1_4": VariantKind("resnet", True, "head", "pretrained, stages 1-4 frozen (head only)"),
    "modern": VariantKind(
        "resnet_modern", False, "all", "GELU, depthwise 3x3 and CBAM in every block, random init"
    ),
}


def build_variant(
    name: str, *, num_classes: int, model: dict[str, Any], weights: str | None
) -> nn.Module:
    """The network of variant ``name``, frozen as the variant says."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; allowed: {', '.join(VARIANTS)}")
    kind = VARIANTS[name]
    options: dict[str, Any] = {"arch": model["arch"], "cifar_stem": model["cifar_stem"]}
    if kind.family == "resnet_modern":  # no pretrained weights exist: ``weights`` is ignored
        options |= {"reduction": model["cbam_reduction"], "spatial_kernel": model["spatial_kernel"]}
    else:
        options["weights"] = weights or "none"
    return build_model(
        kind.family,
        in_shape=(3, 0, 0),
        num_classes=num_classes,
        freeze=kind.freeze,
        freeze_bn_stats=model["freeze_bn_stats"],
        **options,
    )
