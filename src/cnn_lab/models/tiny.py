"""NetA1/NetA2, the lab report's two tiny CNNs, and the hand-set 0/1 first-layer kernels.

The networks end in logits: the loss applies the softmax (over classes). The report's
version put a ReLU and a softmax over the batch dimension before the loss, which was a bug.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cnn_lab.models.registry import register_family

# Four 5x5 kernels of 0s and 1s, each a different symmetric pattern (rows top to bottom).
BY_HAND_ROWS: tuple[tuple[str, ...], ...] = (
    ("10001", "01010", "00100", "01010", "10001"),  # k1: the two diagonals (an X)
    ("00100", "11011", "00100", "11011", "00100"),  # k2
    ("01110", "11011", "10001", "11011", "01110"),  # k3
    ("11011", "01010", "00100", "11011", "11011"),  # k4
)

INITS = ("by_hand", "default")
FIRST_LAYER_MODES = ("conv1_frozen", "all_trained")


def by_hand_kernels() -> Tensor:
    """The four kernels as a 4 x 1 x 5 x 5 float tensor (a fresh copy on every call)."""
    values = [[[int(c) for c in row] for row in kernel] for kernel in BY_HAND_ROWS]
    return torch.tensor(values, dtype=torch.float32).unsqueeze(1)


def _conv_out(size: int, kernel: int, stride: int) -> int:
    out = (size - kernel) // stride + 1
    if out < 1:
        raise ValueError(f"input side {size} is too small for a {kernel}x{kernel} convolution")
    return out


class NetA1(nn.Module):
    """Conv(C->4, 5, stride 2) -> ReLU -> flatten -> Linear(->classes)."""

    def __init__(self, in_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        channels, height, width = in_shape
        self.conv1 = nn.Conv2d(channels, 4, kernel_size=5, stride=2)
        h, w = _conv_out(height, 5, 2), _conv_out(width, 5, 2)
        self.flat_features = 4 * h * w
        self.fc = nn.Linear(self.flat_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.relu(self.conv1(x)).flatten(1))


class NetA2(nn.Module):
    """Conv(C->4, 5, stride 2) -> ReLU -> Conv(4->12, 3, stride 2) -> ReLU -> flatten -> Linear."""

    def __init__(self, in_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        channels, height, width = in_shape
        self.conv1 = nn.Conv2d(channels, 4, kernel_size=5, stride=2)
        self.conv2 = nn.Conv2d(4, 12, kernel_size=3, stride=2)
        h = _conv_out(_conv_out(height, 5, 2), 3, 2)
        w = _conv_out(_conv_out(width, 5, 2), 3, 2)
        self.flat_features = 12 * h * w
        self.fc = nn.Linear(self.flat_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(x.flatten(1))


# Registered with only the options the networks have: ``depth`` does not apply to them.
@register_family("net_a1")
def net_a1(in_shape: tuple[int, ...], num_classes: int) -> NetA1:
    return NetA1(in_shape, num_classes)


@register_family("net_a2")
def net_a2(in_shape: tuple[int, ...], num_classes: int) -> NetA2:
    return NetA2(in_shape, num_classes)


@dataclass(frozen=True)
class Scheme:
    """How the first convolution starts (``init``) and whether it trains (``first_layer``)."""

    name: str
    init: str  # one of INITS
    first_layer: str  # one of FIRST_LAYER_MODES

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.first_layer not in FIRST_LAYER_MODES:
            raise ValueError(
                f"first_layer must be one of {FIRST_LAYER_MODES}, got {self.first_layer!r}"
            )

    @property
    def frozen(self) -> bool:
        return self.first_layer == "conv1_frozen"


SCHEMES: dict[str, Scheme] = {
    "HF": Scheme("HF", "by_hand", "conv1_frozen"),
    "HT": Scheme("HT", "by_hand", "all_trained"),
    "DT": Scheme("DT", "default", "all_trained"),
}


@torch.no_grad()
def load_by_hand_kernels(conv: nn.Conv2d) -> None:
    """Overwrite the weights of a 1->4, 5x5 convolution with the by-hand kernels (bias kept)."""
    kernels = by_hand_kernels()
    if conv.weight.shape != kernels.shape:
        raise ValueError(
            f"the by-hand kernels are {tuple(kernels.shape)} (4 filters of 1 channel, 5x5); "
            f"this convolution's weight is {tuple(conv.weight.shape)}"
        )
    conv.weight.copy_(kernels)


@torch.no_grad()
def share_first_layer(source: nn.Module, *targets: nn.Module) -> None:
    """Copy ``source.conv1`` (weight and bias) into every target, so networks that differ
    after the first layer start from the same first layer."""
    for target in targets:
        target.conv1.load_state_dict(source.conv1.state_dict())


def apply_init(model: nn.Module, scheme: Scheme) -> nn.Module:
    """Put the scheme's first-layer weights in place; ``default`` keeps what is there."""
    if scheme.init == "by_hand":
        load_by_hand_kernels(model.conv1)
    return model


def apply_first_layer_mode(model: nn.Module, scheme: Scheme) -> nn.Module:
    """Freeze the first convolution (weight and bias) for ``conv1_frozen``.

    ``requires_grad=False`` means autograd computes no gradient for these tensors at all,
    and the optimizer, which skips parameters without a gradient, never moves them.
    """
    for parameter in model.conv1.parameters():
        parameter.requires_grad_(not scheme.frozen)
    return model


def should_share(
    network_a: str, scheme_a: Scheme, network_b: str, scheme_b: Scheme, tensor: str
) -> str | None:
    """Why two runs must start with the same ``tensor``, or None if they need not.

    The first-layer bias is one default-initialised tensor in every run; the first-layer
    weights are shared by every run with the same ``init`` (by-hand kernels, or the one
    default draw copied into both networks); later layers are shared within a network.
    """
    if tensor == "conv1.bias":
        return "first-layer bias: one default draw for every run"
    if tensor == "conv1.weight":
        if scheme_a.init != scheme_b.init:
            return None
        if scheme_a.init == "by_hand":
            return "first-layer weights: the by-hand kernels"
        return "first-layer weights: one default draw for every default-init run"
    if network_a == network_b:
        return "same network: every later layer starts from the same values"
    return None
