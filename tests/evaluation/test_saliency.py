"""Every saliency method on a tiny model: shapes, range, no leaked hooks, frozen backbones;
our CAM and pytorch-grad-cam's Grad-CAM agree where theory says they must."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnn_lab.evaluation import saliency
from cnn_lab.models import build_model

pytest.importorskip("pytorch_grad_cam")


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())


def _gap() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("gap_cnn", in_shape=(3, 16, 16), num_classes=3, widths=[4, 8]).eval()


@pytest.mark.parametrize("method", saliency.METHODS)
def test_each_method_gives_maps_in_range_and_leaves_no_hooks(method: str) -> None:
    model = _gap()
    x, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    before = _hooks(model)
    with saliency.explainer(model, method, layer="features", batch_size=8) as explain:
        maps = explain(x, labels)
    assert maps.shape == (4, 16, 16)
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0 + 1e-6
    assert _hooks(model) == before
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_methods_work_on_a_frozen_backbone_and_score_every_image() -> None:
    torch.manual_seed(0)
    model = build_model("resnet", in_shape=(3, 32, 32), num_classes=3, width=8, freeze="head")
    model.train()
    x, labels = torch.randn(5, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1])
    boxes = np.tile([[4, 4, 20, 20]], (5, 1))
    for method in ("gradcam", "layercam", "scorecam"):
        result = saliency.evaluate_method(
            model,
            [(x[:3], labels[:3]), (x[3:], labels[3:])],
            boxes,
            method=method,
            layer="layer4",
            steps=4,
        )
        summary = result.summary()
        assert len(result.deletion) == 5 and len(result.iou) == 5, method
        for key in ("localisation", "pointing_game", "deletion_auc", "insertion_auc"):
            assert 0.0 <= summary[key] <= 1.0, (method, key)
        assert summary["ms_per_image"] > 0
    assert model.training  # the mode it came in with


def test_gradcam_equals_cam_on_a_gap_linear_network() -> None:
    """With GAP + linear, Grad-CAM's channel weights are the head's weights / (h*w), so
    its map is ReLU(CAM) up to scale. One stage without pooling keeps the map at the
    input's size, so neither library's upsampling blurs the comparison."""
    torch.manual_seed(0)
    model = build_model("gap_cnn", in_shape=(3, 16, 16), num_classes=3, widths=[8]).eval()
    x, labels = torch.randn(3, 3, 16, 16), torch.tensor([0, 1, 2])
    with saliency.explainer(model, "cam", layer="features") as explain:
        ours = explain(x, labels)
    with saliency.explainer(model, "gradcam", layer="features") as explain:
        theirs = explain(x, labels)
    for a, b in zip(ours.flatten(1), theirs.flatten(1), strict=True):
        positive = b > 0  # where ReLU keeps CAM: the same map up to an affine scaling
        correlation = np.corrcoef(a[positive].numpy(), b[positive].numpy())[0, 1]
        assert correlation > 0.9999, correlation
        assert torch.equal(a.argmax(), b.argmax())


def test_unknown_method_and_metric_names() -> None:
    unknown = saliency.explainer(_gap(), "gradcam+++", layer="features")
    with pytest.raises(ValueError, match="unknown saliency method"), unknown:
        pass
    assert saliency.metric_name("gradcam++") == "gradcampp"
