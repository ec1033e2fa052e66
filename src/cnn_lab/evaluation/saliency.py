"""Saliency methods side by side: our own CAM, pytorch-grad-cam's methods and chance maps,
each measured by localisation (against known boxes), faithfulness and time per image.

Every method gives N x H x W maps in [0, 1] at the input's size, for given classes, from
the same feature layer. The gradient methods come from pytorch-grad-cam (``grad-cam`` on
PyPI), not from code of ours.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from unittest import mock

import numpy as np
import torch
from torch import Tensor, nn

from cnn_lab.evaluation import cam
from cnn_lab.evaluation.faithfulness import deletion_insertion

# pytorch-grad-cam class names, by the name the study's ``methods`` uses.
LIBRARY_METHODS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "scorecam": "ScoreCAM",
    "layercam": "LayerCAM",
    "xgradcam": "XGradCAM",
    "eigencam": "EigenCAM",
}
CHANCE_METHODS = ("uniform", "centred")
METHODS = ("cam", *LIBRARY_METHODS, *CHANCE_METHODS)

Explain = Callable[[Tensor, Tensor], Tensor]  # (inputs, classes) -> N x H x W maps


def metric_name(method: str) -> str:
    """The method as an MLflow metric name allows it (no ``+``)."""
    return method.replace("+", "p")


def chance_map(method: str, height: int, width: int, sigma: float = 0.15) -> Tensor:
    """The uniform or the centred chance map, H x W."""
    if method == "uniform":
        return torch.as_tensor(cam.uniform_map(height, width), dtype=torch.float32)
    return torch.as_tensor(cam.centred_map(height, width, sigma), dtype=torch.float32)


@contextmanager
def _quiet_score_cam() -> Iterator[None]:
    """ScoreCAM draws a tqdm bar per image: hundreds of bars would bury the run's log."""
    from pytorch_grad_cam import score_cam

    silent = SimpleNamespace(tqdm=lambda iterable, *args, **kwargs: iterable)
    with mock.patch.object(score_cam, "tqdm", silent):
        yield


def _cam_explain(model: nn.Module, layer: str, inputs: Tensor, classes: Tensor) -> Tensor:
    return cam.class_activation_maps(model, inputs, classes=classes, layer=layer).maps[:, 0].cpu()


def _library_explain(extractor: object) -> Explain:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    def explain(inputs: Tensor, classes: Tensor) -> Tensor:
        # Gradients must reach the feature layer even when the backbone is frozen.
        x = inputs.detach().clone().requires_grad_(True)
        targets = [ClassifierOutputTarget(int(c)) for c in classes]
        with _quiet_score_cam():
            maps = extractor(input_tensor=x, targets=targets)
        return torch.as_tensor(np.asarray(maps, dtype=np.float32))

    return explain


@contextmanager
def explainer(
    model: nn.Module,
    method: str,
    *,
    layer: str,
    batch_size: int = 64,
    sigma: float = 0.15,
) -> Iterator[Explain]:
    """A function giving ``method``'s maps of the given classes; the hooks it needs live
    only inside the ``with`` block, and the model's train/eval mode is restored after it."""
    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; known: {', '.join(METHODS)}")
    was_training = model.training
    model.eval()
    try:
        if method == "cam":
            yield partial(_cam_explain, model, layer)
        elif method in CHANCE_METHODS:
            yield lambda x, c: chance_map(method, *x.shape[-2:], sigma).expand(len(x), -1, -1)
        else:
            import pytorch_grad_cam

            extractor_class = getattr(pytorch_grad_cam, LIBRARY_METHODS[method])
            target = dict(model.named_modules())[layer]
            extractor = extractor_class(model=model, target_layers=[target])
            extractor.batch_size = batch_size  # ScoreCAM's masked images per forward
            try:
                yield _library_explain(extractor)
            finally:
                extractor.activations_and_grads.release()
                model.zero_grad(set_to_none=True)
    finally:
        model.train(was_training)


@dataclass
class MethodEvaluation:
    """Per-image results of one method on a split."""

    method: str
    iou: np.ndarray | None  # of the map's box with the true box (None without boxes)
    pointing: np.ndarray | None
    deletion: np.ndarray
    insertion: np.ndarray
    seconds: float  # computing the maps only

    def summary(self, iou_threshold: float = 0.5) -> dict[str, float]:
        scores = {
            "deletion_auc": float(np.mean(self.deletion)),
            "insertion_auc": float(np.mean(self.insertion)),
            "ms_per_image": 1000.0 * self.seconds / max(len(self.deletion), 1),
        }
        if self.iou is not None and self.pointing is not None:
            scores |= cam.LocalisationScores(self.iou, self.pointing).summary(iou_threshold)
        return scores


def evaluate_method(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    boxes: np.ndarray | None,
    *,
    method: str,
    layer: str,
    threshold: float = 0.2,
    steps: int = 10,
    batch_size: int = 64,
    sigma: float = 0.15,
) -> MethodEvaluation:
    """Maps of each image's true class by ``method``, scored against ``boxes`` (one per
    image, in order, or None) and by deletion/insertion with ``steps`` steps."""
    iou, pointing, deletion, insertion = [], [], [], []
    seconds, seen = 0.0, 0
    with explainer(model, method, layer=layer, batch_size=batch_size, sigma=sigma) as explain:
        for inputs, labels in batches:
            start = time.perf_counter()
            maps = explain(inputs, labels)
            seconds += time.perf_counter() - start
            if boxes is not None:
                scores = cam.score_maps(maps.numpy(), boxes[seen : seen + len(labels)], threshold)
                iou.append(scores.iou)
                pointing.append(scores.pointing)
            faith = deletion_insertion(
                model, inputs, labels, maps, steps=steps, batch_size=batch_size, seed=seen
            )
            deletion.append(faith.deletion)
            insertion.append(faith.insertion)
            seen += len(labels)
    located = boxes is not None
    return MethodEvaluation(
        method,
        np.concatenate(iou) if located else None,
        np.concatenate(pointing) if located else None,
        np.concatenate(deletion),
        np.concatenate(insertion),
        seconds,
    )
