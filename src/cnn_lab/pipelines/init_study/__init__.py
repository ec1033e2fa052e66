"""What do hand-set 0/1 first-layer kernels and a frozen first layer cost? (NetA1/NetA2)"""

from cnn_lab.pipelines.init_study.pipeline import create_pipeline

__all__ = ["create_pipeline"]
