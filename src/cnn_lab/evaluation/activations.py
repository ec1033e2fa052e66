"""Signal scale through a network: the standard deviation of what each weight layer sees.

A network whose activations grow or shrink geometrically with depth starts training with
huge (or vanishing) logits; this is the check that a family keeps its scale at init.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from cnn_lab.training.callbacks import weight_layers


def activation_scales(model: nn.Module, inputs: Tensor) -> list[float]:
    """One value per weight layer (Linear/Conv), in forward order: the standard deviation
    of the representation after that layer, i.e. of the next weight layer's input, and
    of the logits for the last one.

    Measured in training mode, as the first training step sees it (BatchNorm normalises
    with batch statistics), on a copy so the model's buffers are untouched.
    """
    probe = copy.deepcopy(model).train()
    layers = [m for _, m in weight_layers(probe)]
    seen: list[float] = []
    hooks = [
        m.register_forward_pre_hook(lambda _m, args: seen.append(float(args[0].float().std())))
        for m in layers[1:]
    ]
    try:
        with torch.no_grad():
            logits = probe(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return [*seen, float(logits.float().std())]
