"""Early stopping on a scripted validation curve: the stop epoch and restored weights."""

from __future__ import annotations

import torch
from torch import nn

from cnn_lab.training.callbacks import Callback, EarlyStopping, EpochState
from cnn_lab.training.engine import fit


class ScriptedValidation(Callback):
    """Replaces the measured validation accuracy by a script and keeps each epoch's weights."""

    def __init__(self, curve: list[float]) -> None:
        self.curve = curve
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_epoch_end(self, state: EpochState) -> None:
        state.metrics["val_accuracy"] = self.curve[state.epoch - 1]
        self.weights[state.epoch] = {k: v.clone() for k, v in state.model.state_dict().items()}


def _run(curve: list[float], stopper: EarlyStopping):
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    batches = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(3)]
    script = ScriptedValidation(curve)
    history = fit(
        model,
        batches,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
        epochs=len(curve),
        val=batches,
        callbacks=[script, stopper],
    )
    return model, history, script


def test_stops_after_patience_without_enough_improvement_and_restores_best() -> None:
    # epoch 2 is best; 0.72 at epoch 4 is not 0.05 better than 0.70, so epochs 3 and 4
    # are the two epochs without improvement and training stops after epoch 4.
    curve = [0.50, 0.70, 0.65, 0.72, 0.90, 0.95]
    stopper = EarlyStopping("val_accuracy", patience=2, min_delta=0.05)
    model, history, script = _run(curve, stopper)
    assert stopper.best_epoch == 2 and stopper.best == 0.70
    assert stopper.stopped_epoch == 4 and history.stopped_epoch == 4
    assert len(history.epochs) == 4
    final = model.state_dict()
    assert all(torch.equal(final[k], v) for k, v in script.weights[2].items())
    assert not torch.equal(final["weight"], script.weights[4]["weight"])


def test_runs_to_the_end_while_improving_and_can_be_reused() -> None:
    stopper = EarlyStopping("val_accuracy", patience=1)
    _run([0.9, 0.1, 0.1], stopper)
    assert stopper.stopped_epoch == 2
    model, history, script = _run([0.1, 0.2, 0.3], stopper)  # the first fit is forgotten
    assert stopper.stopped_epoch is None and history.stopped_epoch is None
    assert stopper.best_epoch == 3 and len(history.epochs) == 3
    assert torch.equal(model.weight, script.weights[3]["weight"])
