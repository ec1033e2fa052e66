"""Where does the network look? Class Activation Maps of a small GAP CNN and a ResNet-18."""

from cnn_lab.pipelines.cam.pipeline import create_pipeline

__all__ = ["create_pipeline"]
