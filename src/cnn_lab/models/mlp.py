"""Multi-layer perceptrons for the depth study: plain, BatchNorm and residual.

``depth`` counts Linear layers, input and output layers included, so a depth-4 network
has four weight matrices whatever its family; that makes the families comparable layer
for layer in the gradient-norm plots.
"""

from __future__ import annotations

import math

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
    """x + ReLU(W x + b): one Linear per block, so parameter counts match :class:`MLP`."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.activation = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.activation(self.linear(x))


@register_family("resmlp")
class ResMLP(nn.Sequential):
    """Input projection, ``depth - 2`` residual blocks, linear head."""

    def __init__(
        self, in_shape: tuple[int, ...], num_classes: int, depth: int = 4, width: int = 128
    ) -> None:
        _check(depth, width)
        in_features = math.prod(in_shape)
        if depth == 1:
            super().__init__(nn.Flatten(), nn.Linear(in_features, num_classes))
            return
        blocks = [ResidualLinear(width) for _ in range(depth - 2)]
        super().__init__(
            nn.Flatten(),
            nn.Linear(in_features, width),
            nn.ReLU(),
            *blocks,
            nn.Linear(width, num_classes),
        )
