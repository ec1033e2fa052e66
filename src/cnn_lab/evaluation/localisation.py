"""Explaining a classifier on labelled test images: where its CAMs (and the other saliency
methods) put the object against the known boxes, how faithful and fast each method is, and
the maps the figures draw.

``settings`` is the study's explanation configuration: ``methods``, ``method_images``,
``threshold``, ``iou``, ``faithfulness_steps``, ``centre_sigma`` and ``render.top_k``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from cnn_lab.data.sources import DatasetBundle, LabelledImages
from cnn_lab.evaluation import cam, cam_plots, saliency
from cnn_lab.training.batching import DeviceBatches, Normalisation

BOX_COLUMNS = ["split", "index", "x0", "y0", "x1", "y1"]
TABLE_COLUMNS = ["model", "method", "kind", "accuracy", "localisation", "top1_localisation"]
TABLE_COLUMNS += ["pointing_game", "mean_iou", "deletion_auc", "insertion_auc"]
TABLE_COLUMNS += ["ms_per_image", "images", "feature_layer"]
MEASURES = ["accuracy", "localisation", "pointing_game", "mean_iou"]
MEASURES += ["deletion_auc", "insertion_auc", "ms_per_image"]


def box_table(boxes: Mapping[str, np.ndarray] | None) -> pd.DataFrame:
    """One row per image and split part (``BOX_COLUMNS``); empty when there are no boxes."""
    frames = [
        pd.DataFrame(b, columns=BOX_COLUMNS[2:]).assign(split=part, index=range(len(b)))
        for part, b in (boxes or {}).items()
    ]
    if not frames:
        return pd.DataFrame(columns=BOX_COLUMNS)
    return pd.concat(frames, ignore_index=True)[BOX_COLUMNS]


def test_part(
    bundle: DatasetBundle, split: dict[str, Any], boxes: pd.DataFrame, limit: int | None = None
) -> tuple[LabelledImages, np.ndarray | None]:
    """The images maps are measured on (the split's test part) and their boxes, if known."""
    if split["test"] == "official":
        images, part, index = bundle.test, "test", np.arange(len(bundle.test))
    else:
        index = np.asarray(split["test"], dtype=np.int64)
        pool = bundle.train
        images = LabelledImages(pool.images[index], pool.labels[index], pool.class_names)
        part = "train"
    if limit is not None and limit < len(images):
        index = index[:limit]
        images = LabelledImages(images.images[:limit], images.labels[:limit], images.class_names)
    rows = boxes[boxes["split"] == part].set_index("index") if len(boxes) else None
    if rows is None or rows.empty:
        return images, None
    return images, rows.loc[index, ["x0", "y0", "x1", "y1"]].to_numpy(np.int64)


def choose_examples(test: LabelledImages, seed: int, top_images: int) -> dict[str, list[int]]:
    """Test images to draw: one per class (grid) and ``top_images`` for the top-k grid."""
    order = np.random.default_rng(seed).permutation(len(test))
    grid = []
    for label in range(test.num_classes):
        hits = order[test.labels[order] == label]
        if len(hits):
            grid.append(int(hits[0]))
    return {"grid": grid, "top": [int(i) for i in order[:top_images]]}


def model_maps(
    model: nn.Module,
    images: np.ndarray,
    *,
    name: str,
    norm: Normalisation,
    device: torch.device,
    layer: str | None,
    top_k: int | None = None,
    classes: np.ndarray | None = None,
) -> cam_plots.ModelMaps:
    """CAMs of ``classes`` (titled with the prediction), or of the ``top_k`` predictions."""
    inputs = norm.apply(torch.as_tensor(images).to(device))
    out = cam.class_activation_maps(
        model,
        inputs,
        classes=None if classes is None else torch.as_tensor(classes),
        top_k=top_k or 1,
        layer=layer,
    )
    probs = out.probabilities.cpu()
    if top_k is None:
        best = probs.max(1)
        return cam_plots.ModelMaps(
            name, out.maps[:, 0].cpu().numpy(), best.indices.numpy(), best.values.numpy()
        )
    chosen = out.classes.cpu()
    return cam_plots.ModelMaps(
        name, out.maps.cpu().numpy(), chosen.numpy(), probs.gather(1, chosen).numpy()
    )


def compare_methods(
    model: nn.Module,
    test: LabelledImages,
    test_boxes: np.ndarray | None,
    evaluation: cam.CamEvaluation,
    settings: Mapping[str, Any],
    batches: partial[DeviceBatches],
    batch_size: int,
) -> dict[str, dict[str, float]]:
    """Each method's localisation, faithfulness and time per image on the first
    ``method_images`` test images (the same images for every method and model)."""
    n = min(settings["method_images"] or len(test), len(test))
    part_boxes = None if test_boxes is None else test_boxes[:n]
    correct = evaluation.predictions[:n] == evaluation.targets[:n]
    rows = {}
    for method in settings["methods"]:
        measured = saliency.evaluate_method(
            model,
            batches(test.images[:n], test.labels[:n]),
            part_boxes,
            method=method,
            layer=evaluation.layer,
            threshold=settings["threshold"],
            steps=settings["faithfulness_steps"],
            batch_size=batch_size,
            sigma=settings["centre_sigma"],
        )
        row = measured.summary(settings["iou"]) | {"accuracy": float(correct.mean()), "images": n}
        if measured.iou is not None:  # the paper's top-1: right class and a good box
            row["top1_localisation"] = float(np.mean(correct & (measured.iou >= settings["iou"])))
        rows[method] = row
    return rows


def method_maps(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    methods: Sequence[str],
    layer: str,
) -> dict[str, np.ndarray]:
    """Each (non-chance) method's maps of ``labels`` on the normalised ``inputs``."""
    maps = {}
    for method in methods:
        if method in saliency.CHANCE_METHODS:
            continue
        with saliency.explainer(model, method, layer=layer) as explain:
            maps[method] = explain(inputs, labels).numpy()
    return maps


def explain(
    model: nn.Module,
    bundle: DatasetBundle,
    split: dict[str, Any],
    boxes: pd.DataFrame,
    settings: Mapping[str, Any],
    *,
    examples: Mapping[str, list[int]],
    name: str,
    norm: Normalisation,
    device: torch.device,
    layer: str | None,
    batch_size: int,
) -> dict[str, Any]:
    """CAM localisation on the split's test part (its first ``max_eval_images``), every
    method's scores on its first images, and the maps the figures draw of its ``examples``
    (``grid``: of the true class; ``top``: of the top-k predictions)."""
    test, test_boxes = test_part(bundle, split, boxes, settings["max_eval_images"])
    drawn, _ = test_part(bundle, split, boxes)
    model = model.to(device).eval()
    batches = partial(DeviceBatches, batch_size=batch_size, device=device, normalisation=norm)
    evaluation = cam.evaluate_cams(
        model,
        batches(test.images, test.labels),
        test_boxes,
        layer=layer,
        threshold=settings["threshold"],
    )
    layer = evaluation.layer
    methods = compare_methods(model, test, test_boxes, evaluation, settings, batches, batch_size)
    maps = partial(model_maps, model, name=name, norm=norm, device=device, layer=layer)
    grid, top = examples["grid"], examples["top"]
    inputs = norm.apply(torch.as_tensor(drawn.images[grid]).to(device))
    labels = torch.as_tensor(drawn.labels[grid], dtype=torch.long, device=device)
    return {
        "layer": layer,
        "scores": evaluation.summary(settings["iou"]),
        "methods": methods,
        "grid": maps(drawn.images[grid], classes=drawn.labels[grid]),
        "top": maps(drawn.images[top], top_k=settings["render"]["top_k"]),
        "method_maps": method_maps(model, inputs, labels, settings["methods"], layer),
    }


def figures(
    bundle: DatasetBundle,
    split: dict[str, Any],
    boxes: pd.DataFrame,
    examples: Mapping[str, list[int]],
    explained: Sequence[Mapping[str, Any]],
    *,
    colormap: str,
    alpha: float,
) -> dict[str, Figure]:
    """The figures of :func:`explain`'s maps of the test ``examples``: the per-class CAM
    grid, the top-k grid and the methods grid (methods in rows, classes in columns, for
    each model)."""
    test, test_boxes = test_part(bundle, split, boxes)

    def panels(index: list[int], with_boxes: bool) -> cam_plots.Panels:
        known = test_boxes[index] if with_boxes and test_boxes is not None else None
        images, labels = test.images[index], test.labels[index]
        return cam_plots.Panels(images, labels, test.class_names, known, colormap, alpha)

    grid = panels(examples["grid"], with_boxes=True)
    rows = [(e["model"], m, maps) for e in explained for m, maps in e["method_maps"].items()]
    return {
        "cam_grid": cam_plots.cam_grid(grid, [e["grid"] for e in explained]),
        "cam_top_k": cam_plots.top_k_grid(
            panels(examples["top"], with_boxes=False), [e["top"] for e in explained]
        ),
        "cam_methods": cam_plots.methods_grid(grid, rows),
    }


def run_metrics(explained: Mapping[str, Any]) -> dict[str, float]:
    """What a model's run records of :func:`explain`: its CAM and every method's scores."""
    return {f"cam_{k}": v for k, v in explained["scores"].items()} | {
        f"saliency_{saliency.metric_name(m)}_{k}": v
        for m, row in explained["methods"].items()
        for k, v in row.items()
    }


def localisation_table(explained: Sequence[Mapping[str, Any]], seeded: bool) -> pd.DataFrame:
    """One row per model, method and seed (``seeded``: a ``seed`` column says which), seed by
    seed; chance maps are methods of kind ``chance``."""
    rows = [
        {
            "model": e["model"],
            "method": method,
            "kind": "chance" if method in saliency.CHANCE_METHODS else "saliency",
            "feature_layer": None if method in saliency.CHANCE_METHODS else e["layer"],
            **scores,
            "seed": e["seed"],
        }
        for e in sorted(explained, key=lambda e: e["seed"])
        for method, scores in e["methods"].items()
    ]
    return pd.DataFrame(rows).reindex(columns=[*TABLE_COLUMNS, "seed"] if seeded else TABLE_COLUMNS)


def seed_means(table: pd.DataFrame) -> dict[str, float]:
    """Each model's and method's measures, averaged over seeds, named for a metrics log."""
    means = table.groupby(["model", "method"], sort=False)[MEASURES].mean()
    return {
        f"{model}_{saliency.metric_name(method)}_{col}": float(value)
        for (model, method), row in means.iterrows()
        for col, value in row.items()
        if pd.notna(value)
    }


def seed_table(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each model's and method's scores."""
    groups = table.groupby(["model", "method"], sort=False)
    stats = groups[[*MEASURES[1:], "accuracy"]].agg(["mean", "std"])  # accuracy last
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    return stats.assign(seeds=groups.size()).reset_index()
