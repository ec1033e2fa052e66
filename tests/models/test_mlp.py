from __future__ import annotations

import pytest
import torch

from cnn_lab.models import build_model, count_parameters


@pytest.mark.parametrize("depth", [1, 2, 4, 32])
def test_residual_and_plain_mlps_have_equal_parameter_counts(depth: int) -> None:
    plain = build_model("mlp", in_shape=(1, 8, 8), num_classes=10, depth=depth, width=32)
    residual = build_model("resmlp", in_shape=(1, 8, 8), num_classes=10, depth=depth, width=32)
    assert count_parameters(plain) == count_parameters(residual)


@pytest.mark.parametrize("family", ["mlp", "mlp_bn", "resmlp"])
def test_output_shape_and_linear_layer_count(family: str) -> None:
    model = build_model(family, in_shape=(1, 8, 8), num_classes=10, depth=8, width=16)
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 10)
    assert sum(isinstance(m, torch.nn.Linear) for m in model.modules()) == 8


def test_depth_4_parameter_count_is_exact() -> None:
    model = build_model("mlp", in_shape=(1, 8, 8), num_classes=10, depth=4, width=128)
    assert count_parameters(model) == (64 * 128 + 128) + 2 * (128 * 128 + 128) + (128 * 10 + 10)


def test_batch_norm_follows_every_hidden_linear() -> None:
    model = build_model("mlp_bn", in_shape=(1, 8, 8), num_classes=10, depth=5, width=16)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()) == 4


def test_unknown_family_and_bad_depth_are_explained() -> None:
    with pytest.raises(ValueError, match="unknown model family 'mpl'; allowed: .*mlp"):
        build_model("mpl", in_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ValueError, match="depth must be at least 1, got 0"):
        build_model("mlp", in_shape=(1, 8, 8), num_classes=10, depth=0)
