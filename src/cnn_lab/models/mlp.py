"""Multi-layer perceptrons for the depth study: plain, BatchNorm and residual.

``depth`` counts Linear layers, input and output layers included, so a depth-4 network
has four weight matrices whatever its family; that makes the families comparable layer
for layer in the gradient-norm plots.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cnn_lab.models.registry import register_family


def _check(depth: int, width: int) -> None:
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")


class MLP(nn.Sequential):
    """Linear+ReLU stack; ``batch_norm`` puts BatchNorm after every hidden Linear."""

    def __init__(
        self,
        in_shape: tuple[int, ...],
        num_classes: int,
        depth: int = 4,
        width: int = 128,
        batch_norm: bool = False,
    ) -> None:
        _check(depth, width)
        layers: list[nn.Module] = [nn.Flatten()]
        in_features = math.prod(in_shape)
        for _ in range(depth - 1):
            layers.append(nn.Linear(in_features, width))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU())
            in_features = width
        layers.append(nn.Linear(in_features, num_classes))
        super().__init__(*layers)


@register_family("mlp")
def plain_mlp(in_shape: tuple[int, ...], num_classes: int, depth: int = 4, width: int = 128) -> MLP:
    return MLP(in_shape, num_classes, depth=depth, width=width)


@register_family("mlp_bn")
def batch_norm_mlp(
    in_shape: tuple[int, ...], num_classes: int, depth: int = 4, width: int = 128
) -> MLP:
    return MLP(in_shape, num_classes, depth=depth, width=width, batch_norm=True)


class ResidualLinear(nn.Module):
    """``x + W ReLU(x) + b``: a pre-activation residual block with one Linear, so parameter
    counts match :class:`MLP` layer for layer.

    Why not ``x + ReLU(W x + b)``: that branch only ever adds non-negative values, so the
    signal grows block after block (initial logits with a standard deviation of ~100 at
    depth 32, ~10^4 at depth 64) and deep networks spend their first epochs recovering.
    Here the branch is pre-activation (He et al. 2016, "Identity Mappings in Deep Residual
    Networks") and its weights start at He-normal scaled by ``1/sqrt(blocks)`` (the
    depth-scaled residual init of Fixup, Zhang et al. 2019, and of Hayou et al. 2021,
    "Stable ResNet"): each block then adds about ``1/blocks`` of the stream's variance, so
    the scale at the head is at most ``e`` times the input projection's at any depth.
    benchmarks/activation_scale.py measured it against zero-initialised (SkipInit-like)
    and output-scaled branches: all three learn at depth 64; this one had the lowest
    first-epoch loss on the digits.
    """

    def __init__(self, width: int, blocks: int = 1) -> None:
        super().__init__()
        self.activation = nn.ReLU()
        self.linear = nn.Linear(width, width)
        nn.init.kaiming_normal_(self.linear.weight, nonlinearity="relu")
        with torch.no_grad():
            self.linear.weight.div_(math.sqrt(max(blocks, 1)))
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.linear(self.activation(x))


@register_family("resmlp")
class ResMLP(nn.Sequential):
    """Input projection, ``depth - 2`` pre-activation residual blocks, ReLU, linear head.

    The ReLU before the head closes the last block's pre-activation (as the final
    BN-ReLU of a pre-activation ResNet does); it has no parameters.
    """

    def __init__(
        self, in_shape: tuple[int, ...], num_classes: int, depth: int = 4, width: int = 128
    ) -> None:
        _check(depth, width)
        in_features = math.prod(in_shape)
        if depth == 1:
            super().__init__(nn.Flatten(), nn.Linear(in_features, num_classes))
            return
        blocks = [ResidualLinear(width, blocks=depth - 2) for _ in range(depth - 2)]
        super().__init__(
            nn.Flatten(),
            nn.Linear(in_features, width),
            *blocks,
            nn.ReLU(),
            nn.Linear(width, num_classes),
        )
