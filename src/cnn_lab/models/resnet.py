"""torchvision ResNets with a head for our classes, pretrained weights and freezing presets.

Shared by every study that fine-tunes (transfer, artworks, cam): one way to get weights,
one way to freeze, one way to split learning rates between head and backbone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnn_lab.models.registry import Surgery, register_family

logger = logging.getLogger(__name__)

RESNET_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101")
STAGES = ("layer1", "layer2", "layer3", "layer4")
# Preset -> first trainable stage; everything before it (stem included) is frozen.
FREEZE_PRESETS: dict[str, str | None] = {
    "all": None,
    "layer2": "layer2",
    "layer3": "layer3",
    "layer4": "layer4",
    "head": "fc",
}


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could be neither downloaded nor found locally."""


def load_weights(arch: str, weights: str, *, key: str = "weights") -> Mapping[str, torch.Tensor]:
    """A state_dict for ``arch``: ``imagenet`` (torchvision; downloaded, or read from the
    torch hub cache) or the path of a checkpoint file, always loaded with weights_only."""
    if weights == "imagenet":
        from torchvision import models as tv_models

        enum = tv_models.get_model_weights(arch).DEFAULT
        try:
            return enum.get_state_dict(progress=False, check_hash=False)
        except Exception as err:  # URLError, socket errors, HTTP errors: all mean "not here"
            hub = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
            raise WeightsUnavailableError(
                f"{key}: 'imagenet' weights for {arch} could not be downloaded ({err}) and are "
                f"not in the torch hub cache ({hub}). Connect to the internet once, copy "
                f"{Path(enum.url).name} to {hub.parent}, or set {key} to a local checkpoint path."
            ) from err
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"{key}: checkpoint {path} does not exist; use 'imagenet', 'none' or a file path"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{key}: {path} holds {type(state).__name__}, not a state_dict")
    return state


def _check_width(weights: str | None, width: int) -> None:
    if weights == "imagenet" and width != 64:
        raise ValueError(f"'imagenet' weights need width 64 (torchvision's), got width {width}")


def load_backbone(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Copy every tensor that fits; the head and a replaced stem may differ (they are
    re-initialised, with a log line), anything else that differs is an error naming keys."""
    own = model.state_dict()
    fitting, skipped, mismatched = {}, [], []
    for name, tensor in state.items():
        if name not in own:
            if not name.startswith("fc."):
                mismatched.append(f"{name} (not in model)")
            continue
        if own[name].shape == tensor.shape:
            fitting[name] = tensor
        elif name.startswith(("fc.", "conv1.")):
            skipped.append(name)
        else:
            mismatched.append(
                f"{name}: checkpoint {tuple(tensor.shape)} vs model {tuple(own[name].shape)}"
            )
    if mismatched:
        raise ValueError(f"checkpoint {source} does not fit the model: " + "; ".join(mismatched))
    missing = sorted(set(own) - set(fitting) - {k for k in own if k.startswith("fc.")})
    missing = [k for k in missing if not k.startswith(("conv1.",)) and "num_batches" not in k]
    if missing:
        raise ValueError(f"checkpoint {source} lacks model keys: {', '.join(missing[:10])}")
    model.load_state_dict(fitting, strict=False)
    if skipped:
        logger.info(
            "weights from %s: re-initialised %s (shape differs)", source, ", ".join(skipped)
        )


# input side / last feature map side. torchvision's ResNet halves the map five times (stem
# conv, max-pool, layer2..4); 16 and 8 drop the stride of layer4 (and layer3), DeepLab's
# "output stride" (Chen et al. 2017, arXiv:1706.05587) without its dilation, which
# torchvision's BasicBlock does not support. A CAM is as fine as that map: 2x2 on 64-px
# images at 32, 4x4 at 16, 8x8 at 8. Weights keep their shapes (the downsampling 1x1
# convs stay, with stride 1), so checkpoints load into any output stride.
OUTPUT_STRIDES = {32: (), 16: ("layer4",), 8: ("layer3", "layer4")}


def check_output_stride(stride: Any, key: str = "output_stride") -> None:
    """Refuse an output stride the network cannot have; ``key`` names it in the message."""
    if stride not in OUTPUT_STRIDES:
        raise ValueError(
            f"{key} must be one of {', '.join(map(str, OUTPUT_STRIDES))} (input side / last "
            f"feature map side), got {stride!r}"
        )


def _unstride(stage: nn.Sequential) -> None:
    """Stride 1 in ``stage``'s first block (its strided 3x3 conv and its shortcut)."""
    for module in stage[0].modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (1, 1)
    stage[0].stride = 1


def _narrow(model: nn.Module, width: int, in_channels: int) -> None:
    """Rebuild ``model``'s stem and stages with ``width`` stem channels (64 in torchvision),
    doubling per stage as usual, with torchvision's initialisation; the stage names stay
    ``layer1..layer4``/``fc`` so freezing presets and head groups apply unchanged."""
    block = type(model.layer1[0])
    depths = [len(getattr(model, stage)) for stage in STAGES]
    model.inplanes = width
    model.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
    model.bn1 = nn.BatchNorm2d(width)
    for index, (stage, depth) in enumerate(zip(STAGES, depths, strict=True)):
        stride = 1 if index == 0 else 2
        setattr(model, stage, model._make_layer(block, width * 2**index, depth, stride=stride))
    model.fc = nn.Linear(width * 8 * block.expansion, model.fc.out_features)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.constant_(module.weight, 1)
            nn.init.constant_(module.bias, 0)


def build_resnet(
    arch: str = "resnet18",
    num_classes: int = 10,
    *,
    weights: str = "none",
    cifar_stem: bool = False,
    in_channels: int = 3,
    width: int = 64,
    output_stride: int = 32,
    weights_key: str = "weights",
) -> nn.Module:
    """A torchvision ResNet with a ``num_classes`` head; ``cifar_stem`` swaps the 7x7/2 conv
    and max-pool for a 3x3/1 conv, the usual stem for 32x32 inputs. ``width`` (stem
    channels, 64 in torchvision) narrows the network for CPU-sized studies.
    ``output_stride`` (32, 16 or 8; see :data:`OUTPUT_STRIDES`) is how many times the
    standard stem and stages shrink the input (the cifar stem divides it by 4 more).
    ``weights_key`` is the parameter name that error messages tell the user to set."""
    if arch not in RESNET_ARCHS:
        raise ValueError(f"unknown ResNet {arch!r}; allowed: {', '.join(RESNET_ARCHS)}")
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    check_output_stride(output_stride)
    _check_width(weights, width)
    # Imported here, not at module level: torchvision costs 2.4 s, and every `kedro run`
    # imports this module (through the pipeline registry) whether it builds a ResNet or not.
    from torchvision import models as tv_models

    if width == 64:
        model = tv_models.get_model(arch, weights=None, num_classes=num_classes)
    else:
        # Every layer with parameters is rebuilt, so the full-width one is never allocated.
        with torch.device("meta"):
            model = tv_models.get_model(arch, weights=None, num_classes=num_classes)
        _narrow(model, width, in_channels)
    if cifar_stem or in_channels != 3:
        kernel, stride, padding = (3, 1, 1) if cifar_stem else (7, 2, 3)
        model.conv1 = nn.Conv2d(in_channels, width, kernel, stride, padding, bias=False)
        if cifar_stem:
            model.maxpool = nn.Identity()
    for stage in OUTPUT_STRIDES[output_stride]:
        _unstride(getattr(model, stage))
    if weights not in ("none", None):
        load_backbone(model, load_weights(arch, weights, key=weights_key), source=str(weights))
    return model


def _freeze_batch_norm(module: nn.Module) -> nn.Module:
    """BatchNorm layers of ``module`` replaced by torchvision's FrozenBatchNorm2d, so their
    statistics stay fixed even in training mode."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            _freeze_batch_norm(child)
    return module


def freeze_resnet(model: nn.Module, preset: str, *, freeze_bn_stats: bool = True) -> nn.Module:
    """Freeze everything before the preset's first trainable stage (stem included)."""
    if preset not in FREEZE_PRESETS:
        raise ValueError(
            f"unknown freezing preset {preset!r}; allowed: {', '.join(FREEZE_PRESETS)}"
        )
    first = FREEZE_PRESETS[preset]
    if first is None:
        return model
    order = ["conv1", "bn1", *STAGES, "fc"]
    for name in order[: order.index(first)]:
        part = getattr(model, name)
        for parameter in part.parameters():
            parameter.requires_grad_(False)
        if freeze_bn_stats:
            if isinstance(part, nn.BatchNorm2d):
                setattr(model, name, _freeze_batch_norm(nn.Sequential(part))[0])
            else:
                _freeze_batch_norm(part)
    return model


def head_parameter_groups(
    model: nn.Module, *, lr: float, backbone_lr_multiplier: float = 1.0, head: str = "fc"
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the head at ``lr``, the trainable backbone at
    ``lr * backbone_lr_multiplier``; frozen tensors are left out."""
    head_params = [p for p in getattr(model, head).parameters() if p.requires_grad]
    head_ids = {id(p) for p in head_params}
    backbone = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head_params, "lr": lr, "name": "head"}]
    if backbone:
        groups.append({"params": backbone, "lr": lr * backbone_lr_multiplier, "name": "backbone"})
    return groups


class DropoutLinear(nn.Linear):
    """A Linear layer with dropout on its input: the head keeps the ``fc.weight`` /
    ``fc.bias`` keys of a plain head, so checkpoints load with or without dropout."""

    def __init__(self, in_features: int, out_features: int, p: float = 0.0) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        super().__init__(in_features, out_features)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(nn.functional.dropout(x, self.p, self.training))


def replace_head(model: nn.Module, num_classes: int, *, dropout: float = 0.0) -> nn.Module:
    """A fresh ``num_classes``-way head (dropout before it) on a ResNet backbone."""
    model.fc = DropoutLinear(model.fc.in_features, num_classes, p=dropout)
    return model


def feature_extractor(model: nn.Module) -> nn.Module:
    """The network without its last linear layer: it outputs the pooled features."""
    model.fc = nn.Identity()
    return model


def _named_weights(
    name: str, options: Mapping[str, Any], *, key: str
) -> Mapping[str, torch.Tensor]:
    """The weights ``name`` (see :func:`load_weights`) for a ``resnet`` family network."""
    _check_width(name, options.get("width", 64))
    return load_weights(options.get("arch", "resnet18"), name, key=key)


# Freezing presets, heads and backbones act on the torchvision layout (stem, layer1..4, fc),
# which the modernised ResNet keeps.
RESNET_SURGERY = Surgery(
    load_weights=_named_weights,
    load_backbone=load_backbone,
    replace_head=replace_head,
    freeze=freeze_resnet,
    freeze_presets=tuple(FREEZE_PRESETS),
)


@register_family("resnet", RESNET_SURGERY)
def resnet_family(
    in_shape: tuple[int, ...],
    num_classes: int,
    arch: str = "resnet18",
    cifar_stem: bool = False,
    width: int = 64,
    output_stride: int = 32,
) -> nn.Module:
    """Randomly initialised: :func:`cnn_lab.models.build_model` loads ``weights``."""
    return build_resnet(
        arch,
        num_classes,
        cifar_stem=cifar_stem,
        in_channels=in_shape[0],
        width=width,
        output_stride=output_stride,
    )
