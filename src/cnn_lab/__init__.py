"""cnn-lab: the deep-learning CNN lab as reproducible, tracked Kedro experiments."""

__version__ = "0.1.0"
