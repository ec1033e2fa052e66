"""Model builders: every network a study trains is built by :func:`build_model`."""

# The built-in families register themselves on import. Python runs this file before any
# cnn_lab.models module, so the registry is complete whichever module a caller imports.
from cnn_lab.models import cnn, gap_cnn, mlp, resnet, resnet_modern, tiny  # noqa: F401
from cnn_lab.models.factory import Head, Weights, build_model, rebuild
from cnn_lab.models.registry import (
    FAMILIES,
    Surgery,
    count_parameters,
    family_options,
    register_family,
)

__all__ = [
    "FAMILIES",
    "Head",
    "Surgery",
    "Weights",
    "build_model",
    "count_parameters",
    "family_options",
    "rebuild",
    "register_family",
]
