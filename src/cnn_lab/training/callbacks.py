"""Per-epoch hooks of the engine: probes, progress, tracking, early stopping.

Callbacks see the :class:`EpochState` after validation and may add metrics to it or ask
training to stop; the engine itself stays a plain loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from cnn_lab.training.ranks import is_main_process
from cnn_lab.training.scoring import evaluate

logger = logging.getLogger(__name__)


@dataclass
class EpochState:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int  # 1-based: the epoch just finished
    epochs: int
    metrics: dict[str, float] = field(default_factory=dict)
    stop: bool = False


class Callback:
    """No-op base: override what you need."""

    def on_train_start(self, model: nn.Module, epochs: int) -> None:
        pass

    def on_epoch_end(self, state: EpochState) -> None:
        pass

    def on_train_end(self, state: EpochState | None) -> None:
        pass

    def state_dict(self) -> dict[str, Any] | None:
        """What a resumed run needs to carry on (None: nothing); saved in checkpoints."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Linear and convolutional layers in forward order (registration order)."""
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]


class GradientNormProbe(Callback):
    """Weight-gradient norm of every layer on one fixed batch, at the end of each epoch.

    Measured in training mode (BatchNorm uses batch statistics, as during training) with
    BatchNorm running statistics saved and restored, so probing does not change the run.
    """

    def __init__(self, inputs: Tensor, targets: Tensor, loss_fn: nn.Module | None = None):
        self.inputs = inputs
        self.targets = targets
        self.loss_fn = loss_fn or nn.CrossEntropyLoss()
        self.by_epoch: dict[int, list[float]] = {}

    def measure(self, model: nn.Module) -> list[float]:
        layers = weight_layers(model)
        buffers = {k: v.clone() for k, v in model.named_buffers()}
        was_training = model.training
        model.train()
        saved_grads = [p.grad for p in model.parameters()]
        for p in model.parameters():
            p.grad = None
        loss = self.loss_fn(model(self.inputs), self.targets)
        # Frozen weights (requires_grad=False) have no gradient: reported as NaN.
        trainable = [m.weight for _, m in layers if m.weight.requires_grad]
        grads = torch.autograd.grad(loss, trainable, allow_unused=True) if trainable else ()
        by_tensor = {id(w): g for w, g in zip(trainable, grads, strict=True)}
        nan = torch.full((), float("nan"), device=loss.device)
        zero = torch.zeros((), device=loss.device)
        values = []
        for _, m in layers:
            if not m.weight.requires_grad:
                values.append(nan)
            else:
                g = by_tensor[id(m.weight)]
                values.append(g.norm() if g is not None else zero)
        norms = torch.stack(values)
        for p, g in zip(model.parameters(), saved_grads, strict=True):
            p.grad = g
        with torch.no_grad():
            for name, value in model.named_buffers():
                value.copy_(buffers[name])
        model.train(was_training)
        return norms.tolist()

    def on_epoch_end(self, state: EpochState) -> None:
        norms = self.measure(state.model)
        self.by_epoch[state.epoch] = norms
        for index, value in enumerate(norms):
            state.metrics[f"grad_norm_{index:02d}"] = value


# Kedro's log prefix (time and level) takes 20 of a piped log's 80 columns.
LINE_WIDTH = 60


@dataclass(frozen=True)
class EpochProgress:
    """One finished epoch as :class:`ProgressLog` reports it. Its log record carries it as
    ``record.epoch_progress``, so a live display can show it without parsing the text."""

    label: str  # the variant, e.g. ``cnn_depth.mlp.mlp_d8``
    epoch: int
    epochs: int
    loss: float | None = None  # training loss
    val: float | None = None  # validation accuracy
    seconds: float | None = None

    def stats(self) -> str:
        parts = []
        if self.loss is not None:
            parts.append(f"loss {self.loss:.3g}")
        if self.val is not None:
            parts.append(f"val {self.val:.3f}")
        if self.seconds is not None:
            parts.append(f"{self.seconds:.1f}s")
        return " ".join(parts)

    def line(self, width: int = LINE_WIDTH) -> str:
        """``[cnn_depth.mlp.mlp_d8] 3/20 loss 0.412 val 0.872 0.4s``; a label too long for
        ``width`` loses its middle (the group), then its study, never the variant."""
        tail = f" {self.epoch}/{self.epochs} {self.stats()}".rstrip()
        parts = self.label.split(".")
        for label in (self.label, f"{parts[0]}..{parts[-1]}", parts[-1]):
            if len(label) + 2 + len(tail) <= width:
                break
        return f"[{label}]{tail}"


class ProgressLog(Callback):
    """One short log line per epoch (variant, epoch, training loss, validation accuracy,
    seconds), whose record also carries the :class:`EpochProgress` itself."""

    def __init__(self, label: str) -> None:
        self.label = label

    def on_epoch_end(self, state: EpochState) -> None:
        if not is_main_process():  # torchrun: one progress line per epoch, from rank 0
            return
        m = state.metrics
        progress = EpochProgress(
            self.label,
            state.epoch,
            state.epochs,
            loss=m.get("train_loss"),
            val=m.get("val_accuracy"),
            seconds=m.get("epoch_time"),
        )
        logger.info("%s", progress.line(), extra={"epoch_progress": progress})


class SplitEvaluation(Callback):
    """Scores the model on another split (e.g. test) after every epoch, as
    ``<prefix>_loss`` and ``<prefix>_accuracy``, for studies that report curves on it."""

    def __init__(self, batches: Iterable[tuple[Tensor, Tensor]], prefix: str = "test") -> None:
        self.batches = batches
        self.prefix = prefix

    def on_epoch_end(self, state: EpochState) -> None:

        scores = evaluate(state.model, self.batches)
        state.metrics[f"{self.prefix}_loss"] = scores["loss"]
        state.metrics[f"{self.prefix}_accuracy"] = scores["accuracy"]


class EarlyStopping(Callback):
    """Stops when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs,
    and puts the best weights back at the end."""

    def __init__(
        self,
        monitor: str = "val_accuracy",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "max",
        restore_best: bool = True,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode, self.restore_best = mode, restore_best
        self.best: float | None = None
        self.best_epoch = 0
        self.stopped_epoch: int | None = None
        self._best_state: dict[str, Any] | None = None
        self._model: nn.Module | None = None

    def on_train_start(self, model: nn.Module, epochs: int) -> None:
        # A callback reused for a second fit must not remember the first one's best.
        self.best, self.best_epoch, self.stopped_epoch, self._best_state = None, 0, None, None
        self._model = model

    def state_dict(self) -> dict[str, Any]:
        # Without this a resumed run would forget its best epoch and patience count,
        # stop later than an uninterrupted one and restore other weights.
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "best_state": self._best_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.stopped_epoch, self._best_state = state["stopped_epoch"], state["best_state"]

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_epoch_end(self, state: EpochState) -> None:
        if self.monitor not in state.metrics:
            raise KeyError(
                f"early stopping monitors {self.monitor!r} but the epoch only has "
                f"{sorted(state.metrics)}; pass validation batches to fit()"
            )
        value = state.metrics[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch = value, state.epoch
            if self.restore_best:
                self._best_state = {
                    k: v.detach().clone() for k, v in state.model.state_dict().items()
                }
        elif state.epoch - self.best_epoch >= self.patience:
            self.stopped_epoch = state.epoch
            state.stop = True

    def on_train_end(self, state: EpochState | None) -> None:
        # ``state`` is None when a resumed run had already stopped: restore all the same.
        if self._model is not None and self.restore_best and self._best_state is not None:
            self._model.load_state_dict(self._best_state)
