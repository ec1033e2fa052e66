"""Class Activation Maps (Zhou et al. 2016), computed by our own code, and how well they localise.

For a network ending in global average pooling and one linear layer, the logit of class c is
``sum_k w_k^c mean_xy f_k(x, y) + b_c``, so ``CAM_c = sum_k w_k^c f_k`` shows where the evidence
for c sits. One forward pass with a hook on the last feature block gives ``f``; there is no
backward pass. The localisation measures follow the paper (box of the largest region above 20%
of the map's maximum, IoU >= 0.5) plus the pointing game, with uniform and centred maps as chance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels; x1 and y1 exclusive


class NotGapLinearError(ValueError):
    """The model does not end in global average pooling + one linear layer after the layer."""


@dataclass
class CamOutput:
    maps: Tensor  # N x K x H x W, each map min-max normalised to [0, 1]
    classes: Tensor  # N x K: the class each map is for
    logits: Tensor  # N x num_classes
    layer: str  # name of the feature layer the maps come from

    @property
    def probabilities(self) -> Tensor:
        return self.logits.softmax(dim=1)


def _is_global_pool(module: nn.Module, inputs: tuple, output: Tensor) -> bool:
    """Adaptive pooling, or a parameter-free leaf (pooling) taking a map down to 1 x 1;
    a block or a convolution that happens to output 1 x 1 is still a feature layer."""
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return True
    if any(True for _ in module.children()) or any(True for _ in module.parameters()):
        return False
    first = inputs[0] if inputs and isinstance(inputs[0], Tensor) else None
    return (
        output.shape[-2:] == (1, 1)
        and first is not None
        and first.dim() == 4
        and first.shape[-2] * first.shape[-1] > 1
    )


@torch.no_grad()
def find_feature_layer(model: nn.Module, example: Tensor) -> str:
    """Name of the last module giving a 4-D feature map before global pooling, found by
    watching one forward pass (a container that returns the map wins over its last child)."""
    seen: list[str] = []
    done = False

    def watch(name: str):
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            nonlocal done
            if done or not isinstance(output, Tensor):
                return
            if output.dim() == 2:
                done = True  # the head (or a flatten): what follows is not a feature map
            elif output.dim() == 4 and not _is_global_pool(module, inputs, output):
                seen.append(name)

        return hook

    was_training = model.training
    with ExitStack() as stack:
        for name, module in model.named_modules():
            if name:
                stack.callback(module.register_forward_hook(watch(name)).remove)
        model.eval()
        try:
            model(example[:1])
        finally:
            model.train(was_training)
    if not seen:
        raise NotGapLinearError("no module of the model produces a 4-D feature map")
    return seen[-1]


def find_head(model: nn.Module) -> nn.Linear:
    """The classifier: the last ``nn.Linear`` registered in the model."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise NotGapLinearError("the model has no nn.Linear head")
    return linears[-1]


def _check_gap_linear(features: Tensor, logits: Tensor, head: nn.Linear, layer: str) -> None:
    """CAM is exact only if logits = head(mean of the features): verify rather than assume."""
    if features.shape[1] != head.in_features:
        raise NotGapLinearError(
            f"layer {layer!r} has {features.shape[1]} channels but the head takes "
            f"{head.in_features} inputs: name the last feature layer (feature_layer) explicitly"
        )
    expected = head(features.float().mean(dim=(2, 3)))
    scale = logits.abs().max().clamp_min(1.0)
    if not torch.allclose(expected, logits.float(), atol=1e-3 * float(scale), rtol=1e-3):
        raise NotGapLinearError(
            f"the logits are not head(global average of {layer!r}): CAM needs a network that "
            f"ends in global average pooling + one linear layer right after that layer"
        )


def normalise_maps(maps: Tensor) -> Tensor:
    """Each H x W map min-max scaled to [0, 1]; a constant map becomes all zeros."""
    flat = maps.flatten(-2)
    low = flat.min(dim=-1, keepdim=True).values
    span = flat.max(dim=-1, keepdim=True).values - low
    scaled = torch.where(span > 0, (flat - low) / span.clamp_min(1e-12), torch.zeros_like(flat))
    return scaled.view_as(maps)


@torch.no_grad()
def class_activation_maps(
    model: nn.Module,
    inputs: Tensor,
    *,
    classes: Tensor | Sequence[int] | None = None,
    top_k: int = 1,
    layer: str | None = None,
    size: tuple[int, int] | None = None,
    upsample: bool = True,
) -> CamOutput:
    """CAMs of ``inputs`` (N x C x H x W) for ``classes`` (N or N x K class indices; the
    ``top_k`` predicted classes when omitted), bilinearly upsampled to ``size`` (the input
    size by default; ``upsample=False`` keeps the feature-map resolution), normalised to [0, 1].

    The forward hook lives only for this call: it is removed even if the forward fails.
    """
    name = layer or find_feature_layer(model, inputs)
    modules = dict(model.named_modules())
    if name not in modules:
        raise KeyError(f"feature layer {name!r} is not a module of the model")
    head = find_head(model)
    captured: list[Tensor] = []

    def keep(module: nn.Module, args: tuple, output: Tensor) -> None:
        captured.append(output)

    was_training = model.training
    handle = modules[name].register_forward_hook(keep)
    try:
        model.eval()
        logits = model(inputs)
    finally:
        handle.remove()
        model.train(was_training)
    if len(captured) != 1 or captured[0].dim() != 4:
        raise NotGapLinearError(f"layer {name!r} must run once and return an N x C x h x w map")
    features = captured[0]
    _check_gap_linear(features, logits, head, name)

    if classes is None:
        chosen = logits.topk(top_k, dim=1).indices
    else:
        chosen = torch.as_tensor(classes, device=logits.device, dtype=torch.long)
        chosen = chosen.view(len(inputs), -1)
    weights = head.weight[chosen].float()  # N x K x C
    maps = torch.einsum("nkc,nchw->nkhw", weights, features.float())
    target = tuple(inputs.shape[-2:] if size is None else size)
    if upsample and target != tuple(maps.shape[-2:]):
        maps = F.interpolate(maps, size=target, mode="bilinear", align_corners=False)
    return CamOutput(normalise_maps(maps), chosen, logits.float(), name)


def box_from_map(cam: np.ndarray, threshold: float = 0.2) -> Box:
    """Bounding box of the largest 8-connected region where ``cam >= threshold * max``,
    as in Zhou et al.; a map without positive values gives the whole image."""
    from scipy import ndimage

    cam = np.asarray(cam, dtype=np.float64)
    height, width = cam.shape
    peak = cam.max()
    if not np.isfinite(peak) or peak <= 0:
        return (0, 0, width, height)
    mask = cam >= threshold * peak
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    ys, xs = np.nonzero(labels == int(sizes.argmax()))
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes with exclusive ends."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def pointing_hit(cam: np.ndarray, box: Sequence[int]) -> float:
    """Pointing game: 1 if the map's maximum lies in the box. Ties at the maximum score the
    fraction of tied pixels inside, so a uniform map scores the box's share of the image."""
    cam = np.asarray(cam)
    ys, xs = np.nonzero(cam >= cam.max())
    inside = (xs >= box[0]) & (xs < box[2]) & (ys >= box[1]) & (ys < box[3])
    return float(inside.mean())


@dataclass
class LocalisationScores:
    iou: np.ndarray  # per image: IoU of the map's box with the true box
    pointing: np.ndarray  # per image: pointing-game score in [0, 1]

    def summary(self, iou_threshold: float = 0.5) -> dict[str, float]:
        return {
            "localisation": float(np.mean(self.iou >= iou_threshold)),
            "mean_iou": float(np.mean(self.iou)),
            "pointing_game": float(np.mean(self.pointing)),
        }


def score_maps(maps: np.ndarray, boxes: np.ndarray, threshold: float = 0.2) -> LocalisationScores:
    """IoU of each map's box with its true box, and the pointing game, for N x H x W maps."""
    maps, boxes = np.asarray(maps), np.asarray(boxes)
    if len(maps) != len(boxes):
        raise ValueError(f"{len(maps)} maps but {len(boxes)} boxes")
    iou = np.array(
        [box_iou(box_from_map(m, threshold), b) for m, b in zip(maps, boxes, strict=True)]
    )
    pointing = np.array([pointing_hit(m, b) for m, b in zip(maps, boxes, strict=True)])
    return LocalisationScores(iou.reshape(-1), pointing.reshape(-1))


def uniform_map(height: int, width: int) -> np.ndarray:
    """The chance map that says nothing: every pixel equally likely."""
    return np.ones((height, width))


def centred_map(height: int, width: int, sigma: float = 0.15) -> np.ndarray:
    """The centre-bias chance map: a Gaussian at the image centre, ``sigma`` a fraction of
    each side (photographers centre objects, so this is the baseline to beat)."""
    ys = (np.arange(height) - (height - 1) / 2) / (sigma * height)
    xs = (np.arange(width) - (width - 1) / 2) / (sigma * width)
    return np.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2))


def chance_scores(
    boxes: np.ndarray, height: int, width: int, *, threshold: float = 0.2, sigma: float = 0.15
) -> dict[str, LocalisationScores]:
    """Scores of the uniform and the centred map against every true box."""
    boxes = np.asarray(boxes)
    return {
        kind: score_maps(np.broadcast_to(cam, (len(boxes), height, width)), boxes, threshold)
        for kind, cam in (
            ("uniform", uniform_map(height, width)),
            ("centred", centred_map(height, width, sigma)),
        )
    }


@dataclass
class CamEvaluation:
    """Per-image results of a model on a split: predictions and, with boxes, localisation."""

    targets: np.ndarray
    predictions: np.ndarray
    confidence: np.ndarray  # probability of the predicted class
    iou: np.ndarray | None  # of the true class's CAM box with the true box
    pointing: np.ndarray | None
    layer: str  # the feature layer the maps came from

    def summary(self, iou_threshold: float = 0.5) -> dict[str, float]:
        correct = self.predictions == self.targets
        scores = {"accuracy": float(correct.mean()), "images": float(len(correct))}
        if self.iou is not None and self.pointing is not None:
            hit = self.iou >= iou_threshold
            scores |= LocalisationScores(self.iou, self.pointing).summary(iou_threshold)
            # The paper's top-1 localisation: right class *and* a box with IoU >= threshold.
            scores["top1_localisation"] = float(np.mean(hit & correct))
        return scores


def evaluate_cams(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    boxes: np.ndarray | None = None,
    *,
    layer: str | None = None,
    threshold: float = 0.2,
) -> CamEvaluation:
    """Classify every batch and, when ``boxes`` (one per sample, in order) are given, score
    the CAM of each image's true class against its box. Maps never outlive their batch."""
    targets, predictions, confidence, iou, pointing = [], [], [], [], []
    seen = 0
    for inputs, labels in batches:
        out = class_activation_maps(model, inputs, classes=labels, layer=layer)
        layer = out.layer  # found once, reused for the following batches
        probs = out.probabilities
        targets.append(labels.cpu().numpy())
        predictions.append(probs.argmax(1).cpu().numpy())
        confidence.append(probs.max(1).values.cpu().numpy())
        if boxes is not None:
            scores = score_maps(
                out.maps[:, 0].cpu().numpy(), boxes[seen : seen + len(labels)], threshold
            )
            iou.append(scores.iou)
            pointing.append(scores.pointing)
        seen += len(labels)
    if boxes is not None and seen != len(boxes):
        raise ValueError(f"{seen} images but {len(boxes)} boxes")
    return CamEvaluation(
        np.concatenate(targets),
        np.concatenate(predictions),
        np.concatenate(confidence),
        np.concatenate(iou) if boxes is not None else None,
        np.concatenate(pointing) if boxes is not None else None,
        str(layer),
    )
