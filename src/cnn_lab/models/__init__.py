"""Model builders: every network a study trains is built by :func:`build_model`."""

from cnn_lab.models.registry import FAMILIES, build_model, count_parameters, register_family

__all__ = ["FAMILIES", "build_model", "count_parameters", "register_family"]
