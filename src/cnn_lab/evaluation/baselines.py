"""Classic classifiers on frozen CNN features: the baseline fine-tuning has to beat.

Features are standardised first (pooled ReLU activations have very different scales per
channel, which slows every linear solver). The SVM solver is a choice because its cost
differs by orders of magnitude: on 5,000 x 512 CIFAR-100 features ``LinearSVC``'s
default dual coordinate descent ran for over 7 minutes on 2 cores, while the primal
solver (``dual=False``, the one to use when samples outnumber features) and an SGD-trained
hinge loss take seconds. Convergence warnings are captured and reported, never hidden.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # scikit-learn loads on use: building the pipelines imports this module
    from sklearn.pipeline import Pipeline

SVM_SOLVERS = ("primal", "dual", "sgd")
logger = logging.getLogger(__name__)


def linear_svm(
    solver: str = "primal", *, c: float = 1.0, max_iter: int = 1000, n_samples: int, seed: int = 0
):
    """A linear SVM: ``primal`` = LinearSVC(dual=False) (squared hinge, fast when
    n_samples >> n_features), ``dual`` = LinearSVC(dual=True) (liblinear's default; slow
    here, capped by ``max_iter``), ``sgd`` = hinge loss by SGD with alpha = 1 / (C n),
    the same regularisation strength as C."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.svm import LinearSVC

    if solver == "primal":
        return LinearSVC(C=c, dual=False, max_iter=max_iter, random_state=seed)
    if solver == "dual":
        return LinearSVC(C=c, dual=True, max_iter=max_iter, random_state=seed)
    if solver == "sgd":
        alpha = 1.0 / (c * max(n_samples, 1))
        return SGDClassifier(
            loss="hinge", alpha=alpha, max_iter=max_iter, tol=1e-4, random_state=seed
        )
    raise ValueError(f"unknown SVM solver {solver!r}; allowed: {', '.join(SVM_SOLVERS)}")


def make_baseline(
    kind: str,
    *,
    n_samples: int,
    c: float = 1.0,
    max_iter: int = 1000,
    svm_solver: str = "primal",
    seed: int = 0,
) -> Pipeline:
    """``svm`` or ``logistic`` (lbfgs, multinomial) behind a StandardScaler."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "svm":
        model = linear_svm(svm_solver, c=c, max_iter=max_iter, n_samples=n_samples, seed=seed)
    elif kind == "logistic":
        model = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    else:
        raise ValueError(f"unknown baseline {kind!r}; allowed: svm, logistic")
    return make_pipeline(StandardScaler(), model)


@dataclass
class BaselineFit:
    """A fitted baseline with what its fit cost and whether the solver converged."""

    name: str
    pipeline: Pipeline
    fit_seconds: float
    converged: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def trainable_parameters(self) -> int:
        model = self.pipeline[-1]
        return int(model.coef_.size + np.size(model.intercept_))

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.pipeline.predict(features) == labels))

    def costs(self) -> dict[str, Any]:
        """What the fit cost and whether it converged, as a summary row has them."""
        return {
            "train_seconds": self.fit_seconds,
            "trainable_parameters": self.trainable_parameters,
            "converged": self.converged,
        }

    def fit_text(self) -> str:
        """``fit 0.12 s``, and ``, did not converge`` when the solver stopped early."""
        return f"fit {self.fit_seconds:.2f} s" + ("" if self.converged else ", did not converge")


def fit_baseline(
    name: str, kind: str, features: np.ndarray, labels: np.ndarray, **options: Any
) -> BaselineFit:
    """Build and fit a :func:`make_baseline`, timing the fit and recording convergence
    warnings (a capped ``max_iter`` shows up in the results, not only on stderr)."""
    from sklearn.exceptions import ConvergenceWarning

    pipeline = make_baseline(kind, n_samples=len(labels), **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        started = time.perf_counter()
        pipeline.fit(features, labels)
        seconds = time.perf_counter() - started
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    for message in messages:
        logger.warning("%s did not converge: %s", name, message)
    return BaselineFit(name, pipeline, seconds, converged=not messages, warnings=messages)


def fit_on_features(
    kind: str, settings: Mapping[str, Any], features: Mapping[str, np.ndarray], *, seed: int
) -> tuple[BaselineFit, float]:
    """A :func:`fit_baseline` of ``kind`` on ``features["train_x"]`` and ``["train_y"]``
    with its settings block (``C``, ``max_iter`` and, for ``svm``, ``solver``), and its
    accuracy on ``features["val_x"]`` and ``["val_y"]``."""
    extra = {"svm_solver": settings["solver"]} if kind == "svm" else {}
    train_x, train_y = features["train_x"], features["train_y"]
    c, max_iter = settings["C"], settings["max_iter"]
    fitted = fit_baseline(kind, kind, train_x, train_y, c=c, max_iter=max_iter, seed=seed, **extra)
    return fitted, fitted.accuracy(features["val_x"], features["val_y"])
