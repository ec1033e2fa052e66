"""How far does a CNN trained on one task carry to another? Feature baselines vs
fine-tuning presets, early stopping, optimizers and a hyper-parameter search."""

from cnn_lab.pipelines.transfer.pipeline import create_pipeline

__all__ = ["create_pipeline"]
