"""Deep networks at init and after a few epochs: the residual MLP must learn at depth 32
for every seed, and no depth-study family may blow its signal up at depth 64."""

from __future__ import annotations

import pytest
import torch

from cnn_lab.data.sources import load_digits_images
from cnn_lab.data.splits import stratified_split
from cnn_lab.evaluation.activations import activation_scales
from cnn_lab.models import build_model
from cnn_lab.training.batching import resize
from cnn_lab.training.recipe import Recipe, SplitData, train_model


@pytest.fixture(scope="module")
def digits() -> SplitData:
    bundle = load_digits_images()
    split = stratified_split(bundle.train.labels, val_ratio=0.2, test_ratio=0.2, seed=0)
    return SplitData.from_bundle(bundle, split)


@pytest.fixture(scope="module")
def inputs(digits: SplitData) -> torch.Tensor:
    images = torch.from_numpy(digits.train.images[:256])
    return digits.normalisation.apply(images)


# (family, depth, model options, input size): depth 64, or the nearest depth the family takes
FAMILIES_AT_64 = [
    ("mlp", 64, {"width": 128}, 8),
    ("mlp_bn", 64, {"width": 128}, 8),
    ("resmlp", 64, {"width": 128}, 8),
    ("cnn", 64, {"width": 16}, 16),
    ("rescnn", 64, {"width": 16}, 16),
    ("cifar_resnet", 62, {}, 16),  # 6n+2
    ("cifar_plain", 62, {}, 16),
]


@pytest.mark.parametrize(("family", "depth", "options", "size"), FAMILIES_AT_64)
def test_activation_scale_at_init_is_bounded_at_depth_64(
    inputs: torch.Tensor, family: str, depth: int, options: dict, size: int
) -> None:
    torch.manual_seed(0)
    x = resize(inputs, size)
    model = build_model(family, in_shape=tuple(x.shape[1:]), num_classes=10, depth=depth, **options)
    scales = activation_scales(model, x)
    assert len(scales) == depth
    # inputs have std 1; the former resmlp block reached ~1e4 here, logits included
    assert max(scales) < 5.0, f"{family}: {max(scales):.3g}"
    assert all(s == s for s in scales)  # no NaN


def test_residual_mlp_keeps_its_scale_across_blocks(inputs: torch.Tensor) -> None:
    for depth in (8, 64):
        torch.manual_seed(0)
        model = build_model("resmlp", in_shape=(1, 8, 8), num_classes=10, depth=depth)
        scales = activation_scales(model, inputs)
        # each block adds ~1/blocks of the variance: at most e times, std sqrt(e) ~ 1.65
        assert max(scales) / scales[0] < 2.5


def test_activation_scales_leave_batch_norm_statistics_alone(inputs: torch.Tensor) -> None:
    model = build_model("mlp_bn", in_shape=(1, 8, 8), num_classes=10, depth=4).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    activation_scales(model, inputs)
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_residual_mlp_learns_at_depth_32_for_every_seed(digits: SplitData, seed: int) -> None:
    """A small version of benchmarks/activation_scale.py --train (20 epochs, >= 0.93)."""
    torch.set_num_threads(1)
    recipe = Recipe(
        epochs=3, batch_size=64, lr=1e-3, seed=seed, device="cpu", probe_gradients=False
    )
    trained = train_model(
        lambda: build_model("resmlp", in_shape=(1, 8, 8), num_classes=10, depth=32, width=128),
        digits,
        recipe,
        label=f"resmlp_d32_s{seed}",
    )
    assert trained.history.epochs[0]["train_loss"] < 2.5  # no blown-up start (was ~30)
    assert trained.test["accuracy"] > 0.8  # chance is 0.1
