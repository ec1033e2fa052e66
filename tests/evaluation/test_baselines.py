"""Feature baselines: they beat chance on a tiny separable problem; solvers that stop
early say so."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_lab.evaluation.baselines import fit_baseline, fit_on_features


def _blobs(seed: int, n: int = 60, classes: int = 3, dims: int = 12):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 4, (classes, dims))
    labels = rng.integers(0, classes, n)
    # one feature on a huge scale: the StandardScaler must make it harmless
    features = centres[labels] + rng.normal(0, 1, (n, dims))
    features[:, 0] *= 1000
    return features.astype(np.float32), labels


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("svm", {"svm_solver": "primal"}),
        ("svm", {"svm_solver": "sgd"}),
        ("svm", {"svm_solver": "dual"}),
        ("logistic", {}),
    ],
)
def test_baseline_beats_chance_on_a_separable_problem(kind: str, options: dict) -> None:
    train_x, train_y = _blobs(0)
    test_x, test_y = _blobs(1)
    fitted = fit_baseline(kind, kind, train_x, train_y, **options)
    assert fitted.accuracy(test_x, test_y) > 0.9  # chance is 1/3
    assert fitted.fit_seconds > 0
    assert fitted.trainable_parameters == 12 * 3 + 3


def test_capped_solver_reports_no_convergence() -> None:
    train_x, train_y = _blobs(0)
    fitted = fit_baseline("svm", "svm", train_x, train_y, svm_solver="dual", max_iter=1)
    assert not fitted.converged
    assert "converge" in fitted.warnings[0]
    assert fit_baseline("lr", "logistic", train_x, train_y).converged


def test_unknown_solver_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown SVM solver 'smo'"):
        fit_baseline("svm", "svm", *_blobs(0), svm_solver="smo")


def test_fit_on_features_reads_its_settings_block_and_scores_validation() -> None:
    (train_x, train_y), (val_x, val_y) = _blobs(0), _blobs(1)
    features = {"train_x": train_x, "train_y": train_y, "val_x": val_x, "val_y": val_y}
    settings = {"solver": "dual", "C": 1.0, "max_iter": 1}
    fitted, val_accuracy = fit_on_features("svm", settings, features, seed=0)
    assert val_accuracy == fitted.accuracy(val_x, val_y)
    assert fitted.costs() == {
        "train_seconds": fitted.fit_seconds,
        "trainable_parameters": 12 * 3 + 3,
        "converged": False,
    }
    assert fitted.fit_text() == f"fit {fitted.fit_seconds:.2f} s, did not converge"
    logistic, _ = fit_on_features("logistic", {"C": 1.0, "max_iter": 1000}, features, seed=0)
    assert logistic.fit_text() == f"fit {logistic.fit_seconds:.2f} s"
