"""A classifier's test predictions per class: the scores, the per-class table across
variants and seeds, F1 by class side by side, and the figures of what it got wrong."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from cnn_lab.evaluation import class_plots
from cnn_lab.evaluation.metrics import classification_metrics, confusion, per_class_report
from cnn_lab.training.scoring import predict


def test_predictions(
    model: nn.Module, test: Any, k: int, top_k: int
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """True and predicted classes of the ``test`` batches, and their ``test_*`` metrics."""
    logits, targets = predict(model, test)
    scores = torch.softmax(logits, dim=1).numpy()
    y_true, y_pred = targets.numpy(), scores.argmax(axis=1)
    metrics = classification_metrics(y_true, y_pred, num_classes=k, scores=scores, k=top_k)
    return y_true, y_pred, {f"test_{name}": value for name, value in metrics.items()}


def test_report(
    model: nn.Module, test: Any, test_rows: Sequence[int], class_names: list[str], top_k: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """The ``test_*`` metrics of ``model`` on the ``test`` batches (rows ``test_rows`` of
    the image table), and, JSON-ready, what the per-class report and the figures are drawn
    from: the seconds scoring took, the classes, the rows, the true and predicted classes
    and the per-class report."""
    started = time.perf_counter()
    y_true, y_pred, scores = test_predictions(model, test, len(class_names), top_k)
    return scores, {
        "test_seconds": time.perf_counter() - started,
        "class_names": class_names,
        "test_rows": list(test_rows),
        "y_true": y_true.tolist(),
        "y_pred": y_pred.tolist(),
        "per_class": per_class_report(y_true, y_pred, class_names).to_dict(orient="records"),
    }


def mistake_figures(
    read: Callable[[np.ndarray], np.ndarray],
    result: Mapping[str, Any],
    title: str,
    count: int,
    seed: int,
) -> dict[str, Figure]:
    """The test confusion matrix (rows normalised) and a grid of images the model got wrong
    (a ``seed``-ed sample of ``count``; ``read`` reads images by their ``test_rows``)."""
    names = result["class_names"]
    y_true, y_pred = np.asarray(result["y_true"]), np.asarray(result["y_pred"])
    wrong = np.flatnonzero(y_true != y_pred)
    chosen = np.sort(np.random.default_rng(seed).permutation(wrong)[:count])
    rows = np.asarray(result["test_rows"], dtype=np.int64)[chosen]
    captions = [f"true: {names[y_true[i]]}\npredicted: {names[y_pred[i]]}" for i in chosen]
    return {
        "confusion_matrix": class_plots.confusion_matrix(
            confusion(y_true, y_pred, len(names)), names, f"{title} (test, rows normalised)"
        ),
        "misclassified": class_plots.image_grid(
            read(rows),
            captions,
            f"{title}, {len(chosen)} of {len(wrong)} misclassified test paintings",
        ),
    }


def per_class_table(results: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every result's ``per_class`` report, one after the other, ``variant`` and ``seed``
    first."""
    per_class = pd.concat(
        [
            pd.DataFrame(r["per_class"]).assign(variant=r["variant"], seed=r["seed"])
            for r in results
        ],
        ignore_index=True,
    )
    leading = ["variant", "seed"]
    return per_class[[*leading, *[c for c in per_class.columns if c not in leading]]]


def per_class_f1(per_class: pd.DataFrame) -> pd.DataFrame:
    """F1 of every class (and the averages) by variant, side by side (the mean over
    training seeds when they repeat), with the support."""
    order = list(dict.fromkeys(per_class["class"]))
    f1 = per_class.pivot_table(index="class", columns="variant", values="f1-score", aggfunc="mean")
    variants = list(dict.fromkeys(per_class["variant"]))
    support = per_class.drop_duplicates("class").set_index("class")["support"]
    table = f1.reindex(index=order, columns=variants).assign(support=support).reset_index()
    return table.astype({"support": "Int64"})
