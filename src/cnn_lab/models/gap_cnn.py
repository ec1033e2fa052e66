"""A small CNN ending in global average pooling and one linear layer: the shape CAM needs.

Stages of 3x3 conv + BatchNorm + ReLU, 2x2 max-pooling between stages (not after the last,
so the final map keeps some resolution for CAM), then GAP and the linear head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from cnn_lab.models.registry import register_family


class GapCNN(nn.Module):
    """``features`` -> global average pooling -> ``head``. With ``input_size`` set, inputs of
    another size are first resized to it, so a net trained on small crops sees whole images
    at the scale it learned."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: Sequence[int] = (32, 64, 128, 256),
        convs_per_stage: int = 1,
        dropout: float = 0.0,
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        if not widths:
            raise ValueError("widths needs at least one stage")
        layers: list[nn.Module] = []
        channels = in_channels
        for stage, width in enumerate(widths):
            if stage > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(convs_per_stage):
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
        self.input_size = input_size
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        size = self.input_size
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = self.pool(self.features(x)).flatten(1)
        return self.head(self.dropout(x))


@register_family("gap_cnn")
def gap_cnn_family(
    in_shape: tuple[int, ...],
    num_classes: int,
    widths: Sequence[int] = (32, 64, 128, 256),
    convs_per_stage: int = 1,
    dropout: float = 0.0,
    input_size: int | None = None,
) -> nn.Module:
    return GapCNN(in_shape[0], num_classes, widths, convs_per_stage, dropout, input_size)
