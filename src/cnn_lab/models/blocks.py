"""Building blocks that modernise a ResNet: CBAM attention, depthwise 3x3, GELU.

Each piece is a small module or an in-place rewrite of a torchvision ResNet, so the
modern variant stays a torchvision ResNet that the freezing presets still understand.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from torchvision.models.resnet import BasicBlock, Bottleneck


class ChannelAttention(nn.Module):
    """CBAM's "what": a shared two-layer MLP over average- and max-pooled channels."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(f"channels and reduction must be >= 1, got {channels}, {reduction}")
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def attention(self, x: Tensor) -> Tensor:
        """N x C x 1 x 1 weights in [0, 1]."""
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        peak = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return torch.sigmoid(avg + peak)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attention(x)


class SpatialAttention(nn.Module):
    """CBAM's "where": a k x k convolution over the channel-wise mean and max maps."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def attention(self, x: Tensor) -> Tensor:
        """N x 1 x H x W weights in [0, 1]."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attention(x)


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al., 2018): channel, then spatial."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.spatial(self.channel(x))


def swap_activations(
    model: nn.Module, factory: Callable[[], nn.Module] = nn.GELU, kind: type = nn.ReLU
) -> int:
    """Replace every ``kind`` module (ReLU) by ``factory()`` in place; returns how many.
    CBAM's own hidden ReLU is left alone: it belongs to the attention MLP, not the network."""
    swapped = 0
    for name, child in model.named_children():
        if isinstance(child, CBAM):
            continue
        if isinstance(child, kind):
            setattr(model, name, factory())
            swapped += 1
        else:
            swapped += swap_activations(child, factory, kind)
    return swapped


def _depthwise(conv: nn.Conv2d) -> nn.Conv2d:
    if conv.in_channels != conv.out_channels:
        raise ValueError(
            f"a depthwise conv keeps the channel count; got {conv.in_channels} -> "
            f"{conv.out_channels}"
        )
    return nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.in_channels,
        bias=False,
    )


def residual_blocks(model: nn.Module) -> list[BasicBlock | Bottleneck]:
    # Imported here: torchvision costs ~2 s, and every run registers this family.
    from torchvision.models.resnet import BasicBlock, Bottleneck

    return [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]


def modernise_blocks(
    model: nn.Module,
    *,
    depthwise: bool = True,
    cbam: bool = True,
    reduction: int = 16,
    spatial_kernel: int = 7,
) -> nn.Module:
    """In every residual block: the 3x3 ``conv2`` becomes depthwise (the next 1x1 mixes
    channels, as in ConvNeXt) and CBAM refines the residual branch after its last
    BatchNorm, before the skip is added (the placement of the CBAM paper)."""
    blocks = residual_blocks(model)
    if not blocks:
        raise ValueError("modernise_blocks expects a torchvision ResNet; found no residual blocks")
    for block in blocks:
        if depthwise:
            block.conv2 = _depthwise(block.conv2)
        if cbam:
            last = "bn3" if hasattr(block, "bn3") else "bn2"  # Bottleneck or BasicBlock
            norm = getattr(block, last)
            refined = OrderedDict(bn=norm, cbam=CBAM(norm.num_features, reduction, spatial_kernel))
            setattr(block, last, nn.Sequential(refined))
    return model
