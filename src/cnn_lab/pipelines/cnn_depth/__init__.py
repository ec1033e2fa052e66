"""Does depth help? Plain vs BatchNorm vs residual networks across a depth grid."""

from cnn_lab.pipelines.cnn_depth.pipeline import create_pipeline

__all__ = ["create_pipeline"]
