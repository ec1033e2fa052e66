"""Classification metrics every study reports, on top of scikit-learn so the numbers mean
what the literature means: accuracy, balanced accuracy (mean per-class recall, the
"macro-average accuracy" of the lab), macro precision/recall/F1, top-k, the per-class
report and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def _labels(num_classes: int) -> list[int]:
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    return list(range(num_classes))


def top_k_accuracy(scores: np.ndarray, y_true: np.ndarray, k: int = 5) -> float:
    """Share of samples whose true class is among the ``k`` highest scores; with fewer
    than ``k`` classes every sample counts (as scikit-learn's top_k_accuracy_score)."""
    scores = np.asarray(scores)
    y_true = np.asarray(y_true)
    if scores.ndim != 2 or len(scores) != len(y_true):
        raise ValueError(f"scores must be N x K for {len(y_true)} samples, got {scores.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float((top == y_true[:, None]).any(axis=1).mean())


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    *,
    num_classes: int,
    scores: np.ndarray | None = None,
    k: int = 5,
) -> dict[str, float]:
    """Headline numbers; macro averages weigh every class equally (classes absent from
    both truth and prediction count as zero, never as a warning)."""
    from sklearn import metrics as skm

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0 or len(y_true) != len(y_pred):
        raise ValueError(
            f"need equally many truths and predictions, got {len(y_true)}, {len(y_pred)}"
        )
    labels = _labels(num_classes)
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    present = sorted(set(y_true.tolist()))
    per_class_recall = skm.recall_score(
        y_true, y_pred, labels=present, average=None, zero_division=0
    )
    result = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        # sklearn's balanced_accuracy_score: mean recall over the classes present in y_true
        "balanced_accuracy": float(np.mean(per_class_recall)),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
    }
    if scores is not None:
        result[f"top{k}_accuracy"] = top_k_accuracy(scores, y_true, k)
    return result


def per_class_report(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, class_names: list[str]
) -> pd.DataFrame:
    """scikit-learn's classification report as a table: one row per class, then the
    accuracy, macro and weighted averages."""
    from sklearn import metrics as skm

    report = skm.classification_report(
        y_true,
        y_pred,
        labels=_labels(len(class_names)),
        target_names=class_names,
        output_dict=True,
        zero_division=0,
    )
    rows = []
    for name, values in report.items():
        if isinstance(values, dict):
            rows.append({"class": name, **values})
        else:  # "accuracy" is a bare number
            rows.append(
                {
                    "class": name,
                    "precision": np.nan,
                    "recall": np.nan,
                    "f1-score": values,
                    "support": np.nan,
                }
            )
    table = pd.DataFrame(rows)
    return table[["class", "precision", "recall", "f1-score", "support"]]


def confusion(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    num_classes: int,
    *,
    normalise: bool = True,
) -> np.ndarray:
    """K x K counts (rows: true class); ``normalise`` divides each row by its total, so a
    row reads as "where did this artist's paintings go" (empty rows stay zero)."""
    from sklearn import metrics as skm

    matrix = skm.confusion_matrix(y_true, y_pred, labels=_labels(num_classes)).astype(np.float64)
    if normalise:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    return matrix


def model_scores(
    model: Any, batches: Any, class_names: Sequence[str]
) -> tuple[dict[str, float], dict[str, Any]]:
    """:func:`classification_metrics` of ``model``'s top class on every batch of ``batches``
    (scored on the batches' device), and every sample's true and predicted class with the
    class names: what a study's confusion matrix is drawn from."""
    from cnn_lab.training.scoring import predict

    logits, targets = predict(model, batches)
    predicted = logits.argmax(dim=1)
    scores = classification_metrics(targets, predicted, num_classes=len(class_names))
    labels = {"true": targets.tolist(), "predicted": predicted.tolist()}
    return scores, {**labels, "classes": list(class_names)}
