from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from cnn_lab.evaluation.metrics import (
    classification_metrics,
    confusion,
    model_scores,
    per_class_report,
    top_k_accuracy,
)

# A hand-made confusion (rows true, columns predicted) over 3 classes:
#   class 0: 4 right, 1 -> class 1      recall 4/5
#   class 1: 2 right, 2 -> class 2      recall 2/4
#   class 2: 1 right                    recall 1/1
CONFUSION = np.array([[4, 1, 0], [0, 2, 2], [0, 0, 1]])


def _from_confusion(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth, pred = [], []
    for (i, j), n in np.ndenumerate(matrix):
        truth += [i] * n
        pred += [j] * n
    return np.array(truth), np.array(pred)


def test_headline_metrics_match_hand_computation_and_scikit_learn() -> None:
    y_true, y_pred = _from_confusion(CONFUSION)
    result = classification_metrics(y_true, y_pred, num_classes=3)
    assert result["accuracy"] == pytest.approx(7 / 10)
    assert result["balanced_accuracy"] == pytest.approx((4 / 5 + 2 / 4 + 1 / 1) / 3)
    precision = [4 / 4, 2 / 3, 1 / 3]
    assert result["macro_precision"] == pytest.approx(np.mean(precision))
    assert result["macro_recall"] == pytest.approx(result["balanced_accuracy"])
    assert result["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert result["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    np.testing.assert_array_equal(confusion(y_true, y_pred, 3, normalise=False), CONFUSION)
    rows = confusion(y_true, y_pred, 3)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)
    assert rows[1, 2] == pytest.approx(0.5)


def test_a_class_never_seen_counts_as_zero_in_macro_averages() -> None:
    y_true, y_pred = _from_confusion(CONFUSION)
    result = classification_metrics(y_true, y_pred, num_classes=4)
    assert result["macro_recall"] == pytest.approx((4 / 5 + 2 / 4 + 1) / 4)
    assert result["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert confusion(y_true, y_pred, 4)[3].tolist() == [0, 0, 0, 0]


def test_top_k_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((50, 6))
    y_true = rng.integers(0, 6, 50)
    for k in (1, 3, 5):
        assert top_k_accuracy(scores, y_true, k) == pytest.approx(
            skm.top_k_accuracy_score(y_true, scores, k=k, labels=range(6))
        )
    result = classification_metrics(y_true, scores.argmax(1), num_classes=6, scores=scores)
    assert result["top5_accuracy"] == pytest.approx(top_k_accuracy(scores, y_true, 5))
    assert top_k_accuracy(scores[:, :3], y_true % 3, 5) == 1.0  # fewer classes than k


def test_per_class_report_is_scikit_learns() -> None:
    y_true, y_pred = _from_confusion(CONFUSION)
    table = per_class_report(y_true, y_pred, ["Dürer", "Kahlo", "van Gogh"]).set_index("class")
    expected = skm.classification_report(y_true, y_pred, output_dict=True)
    assert table.loc["Kahlo", "recall"] == pytest.approx(expected["1"]["recall"])
    assert table.loc["macro avg", "f1-score"] == pytest.approx(expected["macro avg"]["f1-score"])
    assert table.loc["accuracy", "f1-score"] == pytest.approx(0.7)
    assert table.loc["van Gogh", "support"] == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: classification_metrics([0, 1], [0], num_classes=2), "equally many"),
        (lambda: classification_metrics([0], [0], num_classes=0), "num_classes must be"),
        (lambda: top_k_accuracy(np.zeros((2, 3)), np.zeros(3), 1), "scores must be N x K"),
        (lambda: top_k_accuracy(np.zeros((2, 3)), np.zeros(2), 0), "k must be at least 1"),
    ],
)
def test_bad_metric_inputs_are_named(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_model_scores_keep_every_sample_s_true_and_predicted_class() -> None:
    import torch

    # A "model" that predicts the class given as the first input feature.
    inputs = torch.tensor([[0.0], [1.0], [2.0], [1.0]])
    model = torch.nn.Sequential(torch.nn.Linear(1, 3), torch.nn.Softmax(dim=1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[-10.0], [0.0], [10.0]]))
        model[0].bias.copy_(torch.tensor([5.0, 0.0, -15.0]))
    batches = [(inputs[:2], torch.tensor([0, 1])), (inputs[2:], torch.tensor([2, 2]))]
    scores, labels = model_scores(model, batches, ["a", "b", "c"])
    assert labels == {"true": [0, 1, 2, 2], "predicted": [0, 1, 2, 1], "classes": ["a", "b", "c"]}
    assert scores["accuracy"] == 0.75
    assert scores["macro_recall"] == pytest.approx((1 + 1 + 0.5) / 3)
