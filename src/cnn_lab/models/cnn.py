"""Convolutional networks for the depth study: the lab's plain stack, its residual twin,
and He et al.'s (2015, §4.2) CIFAR ResNets with their plain twins.

``depth`` counts weight layers as He et al. do (6n+2 = stem conv + 6n convs + linear head),
so for every family here ``depth`` = 1 stem convolution + ``depth - 2`` body convolutions
+ 1 linear head, and plain and residual twins of equal depth have equal parameter counts.

Down-sampling positions
-----------------------
``cnn`` / ``rescnn``: the body has ``L = depth - 2`` convolutions. Each fraction ``f`` of
``downsample_at`` puts one 2x2 pooling (``pooling``: max or avg, stride 2) after body
convolution ``u * floor(f * L / u + 1/2)`` (f·L rounded to the nearest multiple of ``u``),
where ``u`` = 2 (one residual block of two convolutions) when ``L`` is even and 1
otherwise; position 0 is right after the stem. Snapping to whole blocks makes plain and
residual twins pool at the same places. Every
depth gets the same number of halvings, so all depths end on the same map size before the
global average pooling (e.g. 32x32 with three halvings ends on 4x4).

``cifar_resnet`` / ``cifar_plain``: three stages of ``n = (depth - 2) / 6`` blocks with
``width``, 2x``width`` and 4x``width`` filters (16/32/64 by default); the first convolution
of stages 2 and 3 has stride 2 (32x32 -> 16x16 -> 8x8), as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from cnn_lab.models.registry import register_family, with_fixed

POOLINGS = ("max", "avg")
CIFAR_DEPTHS = (20, 32, 44, 56, 110)


def _conv(
    in_ch: int, out_ch: int, kernel_size: int, padding: int, *, stride: int = 1, bias: bool = True
) -> nn.Conv2d:
    # Before BatchNorm a bias is redundant (BN's shift replaces it): torchvision and the
    # paper's 0.27M..1.7M counts leave it out.
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=bias)


def _norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


def _conv_out(size: int, kernel_size: int, padding: int, stride: int = 1) -> int:
    return (size + 2 * padding - kernel_size) // stride + 1


def _too_small(in_shape: Sequence[int], where: str, hint: str) -> ValueError:
    h, w = in_shape[-2:]
    return ValueError(
        f"input {h}x{w} is too small: the feature map vanishes {where}; {hint} "
        f"(or use larger inputs, e.g. data.image_size)"
    )


def _check_common(depth: int, width: int, kernel_size: int, padding: int) -> None:
    if depth < 2:
        raise ValueError(f"depth must be at least 2 (stem conv + linear head), got {depth}")
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be at least 1, got {kernel_size}")
    if padding < 0:
        raise ValueError(f"padding must be non-negative, got {padding}")


def _check_odd(kernel_size: int, who: str) -> None:
    if kernel_size % 2 == 0:
        raise ValueError(
            f"{who} need an odd kernel_size (size-preserving padding), got {kernel_size}"
        )


def downsample_positions(depth: int, fractions: Sequence[float]) -> list[int]:
    """Body-convolution counts after which a pooling sits (see the module docstring)."""
    body = depth - 2
    for f in fractions:
        if not 0.0 <= f < 1.0:
            raise ValueError(f"downsample_at fractions must be in [0, 1), got {f}")
    unit = 2 if body % 2 == 0 else 1
    # nearest unit boundary, halves rounded up (Python's round() would round half to even)
    return sorted(unit * math.floor(f * body / unit + 0.5) for f in fractions)


class BasicBlock(nn.Module):
    """Two convolutions with a shortcut: torchvision's ``BasicBlock`` shape
    (conv-BN-ReLU-conv-BN, add, ReLU). ``shortcut=False`` gives the plain twin.

    A change of resolution or width uses He et al.'s option A: the identity is subsampled
    and zero-padded in channels, which adds no parameters, so twins stay equal in size.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        batch_norm: bool = True,
        shortcut: bool = True,
    ) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.conv1 = _conv(in_ch, out_ch, kernel_size, padding, stride=stride, bias=not batch_norm)
        self.bn1 = _norm(out_ch, batch_norm)
        self.conv2 = _conv(out_ch, out_ch, kernel_size, padding, bias=not batch_norm)
        self.bn2 = _norm(out_ch, batch_norm)
        self.relu = nn.ReLU()
        self.shortcut = shortcut
        self.stride = stride
        self.extra_channels = out_ch - in_ch
        if self.extra_channels < 0:
            raise ValueError(f"a block cannot reduce channels ({in_ch} -> {out_ch})")

    def identity(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            half = self.extra_channels // 2
            x = F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))
        return x

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut:
            out = out + self.identity(x)
        return self.relu(out)


class _Head(nn.Sequential):
    """Global average pooling and a linear classifier."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


class ConvStack(nn.Sequential):
    """The lab's stack: ``depth - 1`` convolutions of ``width`` filters with ReLU
    (BatchNorm before each ReLU when ``batch_norm``), poolings at ``downsample_at``,
    global average pooling and a linear head. ``residual`` groups the body convolutions
    in :class:`BasicBlock` pairs with identity shortcuts (no extra parameters)."""

    def __init__(
        self,
        in_shape: tuple[int, ...],
        num_classes: int,
        depth: int = 8,
        *,
        width: int = 64,
        kernel_size: int = 3,
        padding: int | None = None,
        pooling: str = "max",
        downsample_at: Sequence[float] = (0.25, 0.5, 0.75),
        batch_norm: bool = False,
        residual: bool = False,
    ) -> None:
        padding = kernel_size // 2 if padding is None else padding
        _check_common(depth, width, kernel_size, padding)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        body = depth - 2
        if residual and body % 2:
            raise ValueError(
                f"rescnn depth must be even (stem + blocks of two convolutions + head), got {depth}"
            )
        if residual:
            _check_odd(kernel_size, "rescnn")
        if residual and padding != kernel_size // 2:
            raise ValueError(
                f"rescnn needs size-preserving padding (kernel_size // 2 = {kernel_size // 2}) "
                f"so each block's output can be added to its input; got padding={padding}"
            )
        positions = downsample_positions(depth, downsample_at)
        pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
        channels, height, width_px = in_shape[0], *in_shape[-2:]
        hint = (
            f"reduce the model options downsample_at={list(downsample_at)}, "
            f"kernel_size={kernel_size} or raise padding={padding}"
        )

        layers: list[nn.Module] = []

        def add_conv(in_ch: int, where: str) -> None:
            nonlocal height, width_px
            height = _conv_out(height, kernel_size, padding)
            width_px = _conv_out(width_px, kernel_size, padding)
            if min(height, width_px) < 1:
                raise _too_small(in_shape, where, hint)
            conv = _conv(in_ch, width, kernel_size, padding, bias=not batch_norm)
            layers.extend([conv, _norm(width, batch_norm)])
            layers.append(nn.ReLU())

        def add_pools(done: int) -> None:
            nonlocal height, width_px
            for _ in range(positions.count(done)):
                height, width_px = height // 2, width_px // 2
                if min(height, width_px) < 1:
                    raise _too_small(in_shape, f"at the pooling after body conv {done}", hint)
                layers.append(pool(2))

        add_conv(channels, "at the stem convolution")
        add_pools(0)
        step = 2 if residual else 1
        for done in range(step, body + 1, step):
            if residual:
                layers.append(
                    BasicBlock(width, width, kernel_size=kernel_size, batch_norm=batch_norm)
                )
            else:
                add_conv(width, f"at body conv {done}")
            add_pools(done)
        layers = [m for m in layers if not isinstance(m, nn.Identity)]
        super().__init__(*layers, _Head(width, num_classes))
        self.final_map = (height, width_px)


register_family("cnn")(
    with_fixed(
        ConvStack,
        "The lab's plain convolution stack (see :class:`ConvStack`).",
        residual=False,
    )
)
register_family("rescnn")(
    with_fixed(
        ConvStack,
        "``cnn`` with its body in residual blocks: same layers, same parameter count.",
        residual=True,
    )
)


class CifarResNet(nn.Module):
    """He et al. 2015 §4.2: conv(16) + 3 stages x n blocks (16/32/64 filters, stride 2
    entering stages 2 and 3) + global average pooling + linear head, 6n+2 weight layers.
    ``shortcut=False`` is the paper's plain baseline: the same network minus shortcuts."""

    def __init__(
        self,
        in_shape: tuple[int, ...],
        num_classes: int,
        depth: int = 20,
        *,
        width: int = 16,
        kernel_size: int = 3,
        batch_norm: bool = True,
        shortcut: bool = True,
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f"depth must be 6n+2 with n >= 1 for the CIFAR ResNet families "
                f"(the paper's 20, 32, 44, 56, 110), got {depth}"
            )
        _check_common(depth, width, kernel_size, kernel_size // 2)
        _check_odd(kernel_size, "the CIFAR ResNet families")
        n = (depth - 2) // 6
        # Padded stride-2 convolutions map any size s >= 1 to ceil(s / 2) >= 1, so unlike
        # pooling stacks these networks accept any input size (the paper uses 32x32).
        padding = kernel_size // 2
        self.stem = nn.Sequential(
            _conv(in_shape[0], width, kernel_size, padding, bias=not batch_norm),
            _norm(width, batch_norm),
            nn.ReLU(),
        )
        stages = []
        in_ch = width
        for stage in range(3):
            out_ch = width * 2**stage
            blocks = [
                BasicBlock(
                    in_ch if i == 0 else out_ch,
                    out_ch,
                    kernel_size=kernel_size,
                    stride=2 if stage > 0 and i == 0 else 1,
                    batch_norm=batch_norm,
                    shortcut=shortcut,
                )
                for i in range(n)
            ]
            stages.append(nn.Sequential(*blocks))
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.head = _Head(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)))


register_family("cifar_resnet")(
    with_fixed(CifarResNet, "He et al.'s CIFAR ResNet (option A shortcuts).", shortcut=True)
)
register_family("cifar_plain")(
    with_fixed(
        CifarResNet,
        "He et al.'s plain baseline: the CIFAR ResNet without shortcuts.",
        shortcut=False,
    )
)
