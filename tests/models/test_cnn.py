"""CNN families: shapes, parameter counts (He et al.'s included), twins, bad inputs."""

from __future__ import annotations

import pytest
import torch

from cnn_lab.models import build_model, count_parameters
from cnn_lab.models.cnn import downsample_positions

# He et al. 2015, Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M. The exact counts are those of
# option-A ResNets with bias-free convolutions before BatchNorm and a 10-way head.
PAPER_COUNTS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}
PAPER_ROUNDED = {20: "0.27M", 32: "0.46M", 44: "0.66M", 56: "0.85M", 110: "1.7M"}


def _millions(count: int, depth: int) -> str:
    return f"{count / 1e6:.1f}M" if depth == 110 else f"{count / 1e6:.2f}M"


@pytest.mark.parametrize("depth", sorted(PAPER_COUNTS))
def test_cifar_resnet_parameter_counts_match_the_paper(depth: int) -> None:
    with torch.device("meta"):
        resnet = build_model("cifar_resnet", in_shape=(3, 32, 32), num_classes=10, depth=depth)
        plain = build_model("cifar_plain", in_shape=(3, 32, 32), num_classes=10, depth=depth)
    assert _millions(count_parameters(resnet), depth) == PAPER_ROUNDED[depth]
    assert count_parameters(resnet) == PAPER_COUNTS[depth]
    assert count_parameters(plain) == count_parameters(resnet)
    weight_layers = [
        m for m in resnet.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    assert len(weight_layers) == depth  # 6n+2: convolutions plus the linear head


def test_cifar_resnet_maps_and_output_shape() -> None:
    model = build_model("cifar_resnet", in_shape=(3, 32, 32), num_classes=10, depth=20)
    x = torch.randn(2, 3, 32, 32)
    maps = [stage(model.stem(x)).shape for stage in [model.stages[0]]]
    assert maps == [torch.Size([2, 16, 32, 32])]
    assert model.stages(model.stem(x)).shape == (2, 64, 8, 8)
    assert model(x).shape == (2, 10)


def test_option_a_shortcut_pads_channels_and_subsamples() -> None:
    model = build_model("cifar_resnet", in_shape=(3, 32, 32), num_classes=10, depth=20)
    block = model.stages[1][0]  # 16 -> 32 channels, stride 2
    x = torch.randn(1, 16, 32, 32)
    identity = block.identity(x)
    assert identity.shape == (1, 32, 16, 16)
    assert torch.equal(identity[:, 8:24], x[:, :, ::2, ::2])
    assert identity[:, :8].abs().sum() == 0 and identity[:, 24:].abs().sum() == 0


def test_plain_twin_has_no_shortcut_in_forward() -> None:
    torch.manual_seed(0)
    resnet = build_model("cifar_resnet", in_shape=(3, 32, 32), num_classes=10, depth=20)
    plain = build_model("cifar_plain", in_shape=(3, 32, 32), num_classes=10, depth=20)
    plain.load_state_dict(resnet.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(resnet(x), plain(x))


@pytest.mark.parametrize("depth", [2, 4, 8, 16])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_cnn_and_rescnn_twins_have_equal_parameters(depth: int, batch_norm: bool) -> None:
    options = dict(in_shape=(1, 16, 16), num_classes=10, depth=depth, width=8)
    plain = build_model("cnn", batch_norm=batch_norm, **options)
    residual = build_model("rescnn", batch_norm=batch_norm, **options)
    assert count_parameters(plain) == count_parameters(residual)
    convs = [m for m in plain.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == depth - 1
    x = torch.randn(3, 1, 16, 16)
    assert plain(x).shape == residual(x).shape == (3, 10)
    assert plain.final_map == residual.final_map == (2, 2)


def test_cnn_options_change_the_network() -> None:
    model = build_model(
        "cnn",
        in_shape=(3, 32, 32),
        num_classes=5,
        depth=6,
        width=12,
        kernel_size=5,
        padding=2,
        pooling="avg",
        downsample_at=[0.5],
    )
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert {c.out_channels for c in convs} == {12} and convs[0].kernel_size == (5, 5)
    assert any(isinstance(m, torch.nn.AvgPool2d) for m in model.modules())
    assert model.final_map == (16, 16)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_downsample_positions_snap_to_blocks() -> None:
    # 14 body convs: f * 7 blocks = 1.75, 3.5, 5.25 -> blocks 2, 4, 5 -> convs 4, 8, 10
    assert downsample_positions(16, [0.25, 0.5, 0.75]) == [4, 8, 10]
    assert downsample_positions(4, [0.25, 0.5, 0.75]) == [0, 2, 2]  # 0 = after the stem
    assert downsample_positions(7, [0.5]) == [3]  # odd body: single convs, 2.5 rounds up
    with pytest.raises(ValueError, match=r"downsample_at fractions must be in \[0, 1\), got 1.0"):
        downsample_positions(8, [1.0])


@pytest.mark.parametrize("depth", [10, 21, 2])
def test_cifar_depth_must_be_6n_plus_2(depth: int) -> None:
    with pytest.raises(ValueError, match=rf"depth must be 6n\+2 .* got {depth}"):
        build_model("cifar_resnet", in_shape=(3, 32, 32), num_classes=10, depth=depth)


def test_input_too_small_names_the_options() -> None:
    with pytest.raises(
        ValueError,
        match=r"input 4x4 is too small: the feature map vanishes at the pooling after body "
        r"conv 4; reduce the model options downsample_at=\[0.25, 0.5, 0.75\]",
    ):
        build_model("cnn", in_shape=(1, 4, 4), num_classes=10, depth=8)


def test_unpadded_convolutions_too_small() -> None:
    with pytest.raises(ValueError, match=r"vanishes at body conv 2; .*padding=0"):
        build_model("cnn", in_shape=(1, 5, 5), num_classes=10, depth=4, padding=0, downsample_at=[])


def test_rescnn_rejects_odd_depth_and_shrinking_padding() -> None:
    with pytest.raises(ValueError, match="rescnn depth must be even"):
        build_model("rescnn", in_shape=(1, 16, 16), num_classes=10, depth=5)
    with pytest.raises(ValueError, match="rescnn needs size-preserving padding"):
        build_model("rescnn", in_shape=(1, 16, 16), num_classes=10, depth=4, padding=0)
    with pytest.raises(ValueError, match="pooling must be one of max, avg"):
        build_model("cnn", in_shape=(1, 16, 16), num_classes=10, depth=4, pooling="stride")
