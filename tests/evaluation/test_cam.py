"""CAM by our code against an independent computation and torchcam; localisation helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnn_lab.evaluation import cam
from cnn_lab.models import build_model


class TinyGap(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.last = nn.Conv2d(4, 5, 3, padding=1, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.last(self.body(x))).flatten(1))


def _net() -> TinyGap:
    torch.manual_seed(0)
    return TinyGap().eval()


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_feature_layer_found_automatically() -> None:
    x = torch.randn(2, 3, 12, 12)
    assert cam.find_feature_layer(_net(), x) == "last"
    resnet = build_model("resnet", in_shape=(3, 32, 32), num_classes=4)
    assert cam.find_feature_layer(resnet, torch.randn(1, 3, 32, 32)) == "layer4"
    gap = build_model("gap_cnn", in_shape=(3, 16, 16), num_classes=4, widths=[4, 8])
    assert cam.find_feature_layer(gap, torch.randn(1, 3, 16, 16)) == "features"


def test_cam_equals_independent_computation() -> None:
    net = _net()
    x = torch.randn(2, 3, 12, 12)
    classes = torch.tensor([2, 0])
    out = cam.class_activation_maps(net, x, classes=classes, upsample=False)

    features = net.last(net.body(x))  # 2 x 5 x 6 x 6, computed without hooks
    for n in range(2):
        raw = np.zeros((6, 6))
        w = net.fc.weight[classes[n]].detach().numpy()
        for k in range(5):
            raw += w[k] * features[n, k].detach().numpy()
        expected = (raw - raw.min()) / (raw.max() - raw.min())
        np.testing.assert_allclose(out.maps[n, 0].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(out.logits.numpy(), net(x).detach().numpy(), atol=1e-6)

    up = cam.class_activation_maps(net, x, classes=classes)
    assert up.maps.shape == (2, 1, 12, 12)
    assert float(up.maps.min()) == 0.0 and float(up.maps.max()) == 1.0


def test_cam_matches_torchcam_up_to_normalisation() -> None:
    torchcam = pytest.importorskip("torchcam.methods")
    net = _net()
    x = torch.randn(1, 3, 12, 12)
    ours = cam.class_activation_maps(net, x, classes=[1], upsample=False).maps[0, 0]
    with torchcam.CAM(net, target_layer="last", fc_layer="fc", input_shape=(3, 12, 12)) as ext:
        scores = net(x)
        theirs = ext(class_idx=1, scores=scores, normalized=False)[0][0]
    theirs = (theirs - theirs.min()) / (theirs.max() - theirs.min())
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_top_k_classes_are_the_predicted_ones() -> None:
    net = _net()
    x = torch.randn(3, 3, 12, 12)
    out = cam.class_activation_maps(net, x, top_k=2)
    assert out.classes.shape == (3, 2)
    torch.testing.assert_close(out.classes, net(x).topk(2, dim=1).indices)


def test_hooks_are_removed_after_calls_and_errors() -> None:
    net = _net()
    x = torch.randn(1, 3, 12, 12)
    before = _hooks(net)
    cam.class_activation_maps(net, x)
    cam.class_activation_maps(net, x, layer="last")
    assert _hooks(net) == before

    class Boom(Exception):
        pass

    def explode(module, args, output):
        raise Boom

    handle = net.fc.register_forward_hook(explode)
    with pytest.raises(Boom):
        cam.class_activation_maps(net, x, layer="last")
    with pytest.raises(Boom):
        cam.class_activation_maps(net, x)  # the layer search fails too
    handle.remove()
    assert _hooks(net) == before
    assert not net.training  # the eval/train mode is restored as well


def test_non_gap_models_and_bad_layers_are_refused() -> None:
    net = _net()
    with pytest.raises(cam.NotGapLinearError, match="channels"):
        cam.class_activation_maps(net, torch.randn(1, 3, 12, 12), layer="body")

    class MaxPooled(TinyGap):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.last(self.body(x)).amax(dim=(2, 3)))

    with pytest.raises(cam.NotGapLinearError, match="global average"):
        cam.class_activation_maps(MaxPooled().eval(), torch.randn(2, 3, 12, 12))
    with pytest.raises(KeyError, match="nowhere"):
        cam.class_activation_maps(net, torch.randn(1, 3, 12, 12), layer="nowhere")


def test_box_from_map_takes_largest_region_above_threshold() -> None:
    m = np.zeros((10, 12))
    m[2:5, 1:4] = 1.0  # peak region, 9 pixels
    m[6:9, 5:11] = 0.3  # larger region above 20% of the peak, 18 pixels
    m[0, 11] = 0.1  # below the threshold
    assert cam.box_from_map(m, 0.2) == (5, 6, 11, 9)
    assert cam.box_from_map(m, 0.5) == (1, 2, 4, 5)
    diagonal = np.eye(4)  # 8-connected: one region
    assert cam.box_from_map(diagonal) == (0, 0, 4, 4)
    assert cam.box_from_map(np.zeros((3, 5))) == (0, 0, 5, 3)


def test_iou_and_pointing_game() -> None:
    assert cam.box_iou((0, 0, 4, 4), (0, 0, 4, 4)) == 1.0
    assert cam.box_iou((0, 0, 4, 4), (2, 0, 6, 4)) == pytest.approx(8 / 24)
    assert cam.box_iou((0, 0, 2, 2), (3, 3, 5, 5)) == 0.0
    m = np.zeros((6, 6))
    m[4, 1] = 1.0
    assert cam.pointing_hit(m, (0, 3, 3, 6)) == 1.0
    assert cam.pointing_hit(m, (2, 0, 6, 6)) == 0.0
    # a uniform map points at the box's share of the image
    assert cam.pointing_hit(np.ones((4, 5)), (0, 0, 2, 2)) == pytest.approx(4 / 20)


def test_chance_levels() -> None:
    boxes = np.array([[0, 0, 10, 10], [2, 2, 8, 8], [0, 0, 3, 3]])
    chance = cam.chance_scores(boxes, 10, 10, sigma=0.15)
    uniform, centred = chance["uniform"].summary(0.5), chance["centred"].summary(0.5)
    # the uniform map's box is the whole image: IoU = box area / 100
    np.testing.assert_allclose(chance["uniform"].iou, [1.0, 0.36, 0.09])
    assert uniform["localisation"] == pytest.approx(1 / 3)
    assert uniform["pointing_game"] == pytest.approx((1.0 + 0.36 + 0.09) / 3)
    # the centred map's maximum is the centre: inside the first two boxes only
    np.testing.assert_allclose(chance["centred"].pointing, [1.0, 1.0, 0.0])
    assert centred["localisation"] == pytest.approx(1 / 3)  # its box fits the middle box best


def test_evaluate_cams_scores_a_perfect_detector() -> None:
    """A hand-set network whose CAM is exactly the bright object: localisation must be 1."""
    net = build_model("gap_cnn", in_shape=(1, 8, 8), num_classes=2, widths=[1])
    with torch.no_grad():
        conv, bn = net.features[0], net.features[1]
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0
        bn.eval()
        net.head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net.head.bias.zero_()
    images = torch.zeros(2, 1, 8, 8)
    images[0, 0, 1:4, 2:6] = 1.0
    images[1, 0, 5:8, 0:3] = 1.0
    boxes = np.array([[2, 1, 6, 4], [0, 5, 3, 8]])
    result = cam.evaluate_cams(net, [(images, torch.tensor([0, 0]))], boxes)
    scores = result.summary(0.5)
    assert result.layer == "features"
    assert scores["localisation"] == 1.0 and scores["pointing_game"] == 1.0
    assert scores["accuracy"] == 1.0 and scores["top1_localisation"] == 1.0
