"""One builder keyed by family name, so studies never construct networks by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

Builder = Callable[..., nn.Module]
FAMILIES: dict[str, Builder] = {}


def register_family(name: str) -> Callable[[Builder], Builder]:
    """Class or function decorator adding a family to :data:`FAMILIES`."""

    def decorate(builder: Builder) -> Builder:
        if name in FAMILIES:
            raise ValueError(f"model family {name!r} is registered twice")
        FAMILIES[name] = builder
        return builder

    return decorate


def _load_builtin_families() -> None:
    # Imported for their registration side effect; kept here so `FAMILIES` is complete
    # whichever module a caller imports first.
    from cnn_lab.models import cnn, gap_cnn, mlp, resnet, resnet_modern, tiny  # noqa: F401


def build_model(family: str, **options: Any) -> nn.Module:
    """Build a network of ``family`` with the family's own keyword options."""
    _load_builtin_families()
    if family not in FAMILIES:
        allowed = ", ".join(sorted(FAMILIES))
        raise ValueError(f"unknown model family {family!r}; allowed: {allowed}")
    return FAMILIES[family](**options)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
