"""NetA1/NetA2 and the by-hand kernels, checked against the issue's own text."""

from __future__ import annotations

import pytest
import torch

from cnn_lab.models import build_model, count_parameters
from cnn_lab.models.tiny import SCHEMES, apply_first_layer_mode, apply_init
from cnn_lab.training.batching import DeviceBatches, Normalisation
from cnn_lab.training.callbacks import GradientNormProbe
from cnn_lab.training.engine import fit
from cnn_lab.training.optim import build_optimizer

# Copied from the issue, rows separated by "/".
ISSUE_KERNELS = [
    "1 0 0 0 1 / 0 1 0 1 0 / 0 0 1 0 0 / 0 1 0 1 0 / 1 0 0 0 1",
    "0 0 1 0 0 / 1 1 0 1 1 / 0 0 1 0 0 / 1 1 0 1 1 / 0 0 1 0 0",
    "0 1 1 1 0 / 1 1 0 1 1 / 1 0 0 0 1 / 1 1 0 1 1 / 0 1 1 1 0",
    "1 1 0 1 1 / 0 1 0 1 0 / 0 0 1 0 0 / 1 1 0 1 1 / 1 1 0 1 1",
]


def _issue_kernels() -> torch.Tensor:
    rows = [[[float(v) for v in row.split()] for row in k.split("/")] for k in ISSUE_KERNELS]
    return torch.tensor(rows).unsqueeze(1)


@pytest.mark.parametrize("family", ["net_a1", "net_a2"])
def test_by_hand_kernels_are_loaded_exactly_and_keep_the_bias(family: str) -> None:
    torch.manual_seed(0)
    model = build_model(family, in_shape=(1, 28, 28), num_classes=10)
    default = {k: v.detach().clone() for k, v in model.conv1.state_dict().items()}
    apply_init(model, SCHEMES["DT"])  # default init: nothing changes
    assert torch.equal(model.conv1.weight.detach(), default["weight"])
    apply_init(model, SCHEMES["HT"])
    assert torch.equal(model.conv1.weight.detach(), _issue_kernels())
    assert torch.equal(model.conv1.bias.detach(), default["bias"])


def test_by_hand_kernels_need_one_input_channel() -> None:
    model = build_model("net_a1", in_shape=(3, 28, 28), num_classes=10)
    with pytest.raises(ValueError, match="by-hand kernels"):
        apply_init(model, SCHEMES["HF"])


@pytest.mark.parametrize(
    ("family", "side", "features"),
    [("net_a1", 28, 576), ("net_a2", 28, 300), ("net_a1", 32, 784), ("net_a2", 32, 432)],
)
def test_flatten_size_follows_the_input(family: str, side: int, features: int) -> None:
    model = build_model(family, in_shape=(1, side, side), num_classes=10)
    assert model.flat_features == features
    assert model.fc.in_features == features
    assert model(torch.zeros(3, 1, side, side)).shape == (3, 10)


def test_too_small_input_is_an_error() -> None:
    with pytest.raises(ValueError, match="too small"):
        build_model("net_a2", in_shape=(1, 8, 8), num_classes=10)


def test_frozen_first_layer_is_bit_identical_after_training() -> None:
    torch.manual_seed(0)
    model = apply_first_layer_mode(
        apply_init(build_model("net_a2", in_shape=(1, 28, 28), num_classes=10), SCHEMES["HF"]),
        SCHEMES["HF"],
    )
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - 4 * 25 - 4
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (64,), generator=generator)
    batches = DeviceBatches(
        images,
        labels,
        batch_size=16,
        device=torch.device("cpu"),
        normalisation=Normalisation((0.5,), (0.25,)),
        shuffle=True,
    )
    # Weight decay would move a frozen tensor if the optimizer touched it at all.
    optimizer = build_optimizer("adamw", model.parameters(), lr=1e-2, weight_decay=0.1)
    fit(model, batches, optimizer=optimizer, epochs=2)
    after = model.state_dict()
    assert torch.equal(after["conv1.weight"], before["conv1.weight"])
    assert torch.equal(after["conv1.bias"], before["conv1.bias"])
    assert model.conv1.weight.grad is None  # no weight gradient was ever computed
    assert not torch.equal(after["conv2.weight"], before["conv2.weight"])
    assert not torch.equal(after["fc.weight"], before["fc.weight"])

    norms = GradientNormProbe(images[:8].float(), labels[:8]).measure(model)
    assert len(norms) == 3
    assert torch.isnan(torch.tensor(norms[0]))  # frozen: no gradient
    assert all(n > 0 for n in norms[1:])
