"""Who painted it? ResNets from scratch, fine-tuned, partly frozen and modernised."""

from cnn_lab.pipelines.artworks.pipeline import create_pipeline

__all__ = ["create_pipeline"]
