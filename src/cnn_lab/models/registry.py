"""The table of model families: a builder per name and the surgery each family supports.

A leaf module: it imports no family. Families add themselves with :func:`register_family`
when imported, and ``cnn_lab.models`` imports every built-in family, so the table is
complete whichever ``cnn_lab.models`` module a caller imports first.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor, nn

Builder = Callable[..., nn.Module]
FAMILIES: dict[str, Builder] = {}


class WeightsLoader(Protocol):
    """A state dict for a weights name (``imagenet``, a file path, ...) and the family's
    options; ``key`` is the parameter that error messages tell the user to set."""

    def __call__(
        self, name: str, options: Mapping[str, Any], *, key: str
    ) -> Mapping[str, Tensor]: ...


class BackboneLoader(Protocol):
    """Copy every tensor of ``state`` but the head into ``model``; ``source`` names the
    state in error messages."""

    def __call__(self, model: nn.Module, state: Mapping[str, Tensor], *, source: str) -> None: ...


class HeadReplacer(Protocol):
    def __call__(self, model: nn.Module, num_classes: int, *, dropout: float) -> nn.Module: ...


class Freezer(Protocol):
    def __call__(self, model: nn.Module, preset: str, *, freeze_bn_stats: bool) -> nn.Module: ...


@dataclass(frozen=True)
class Surgery:
    """What can be done to a family's network after it is built; ``None``: not supported.
    Every family accepts the ``all`` preset (nothing frozen), so freezing it is a no-op."""

    load_weights: WeightsLoader | None = None
    load_backbone: BackboneLoader | None = None
    replace_head: HeadReplacer | None = None
    freeze: Freezer | None = None
    freeze_presets: tuple[str, ...] = ("all",)


SURGERY: dict[str, Surgery] = {}


def register_family(name: str, surgery: Surgery | None = None) -> Callable[[Builder], Builder]:
    """Class or function decorator adding a family (and its surgery) to :data:`FAMILIES`."""

    def decorate(builder: Builder) -> Builder:
        if name in FAMILIES:
            raise ValueError(f"model family {name!r} is registered twice")
        FAMILIES[name] = builder
        SURGERY[name] = surgery or Surgery()
        return builder

    return decorate


def with_fixed(builder: Builder, doc: str, **fixed: Any) -> Builder:
    """``builder`` with the keyword options ``fixed`` set: a family that differs from
    another only in them (``rescnn`` is ``cnn`` with residual blocks). Its signature
    leaves them out, so they are not options a study can set."""

    def family(*args: Any, **options: Any) -> nn.Module:
        return builder(*args, **options, **fixed)

    signature = inspect.signature(builder)
    kept = [p for name, p in signature.parameters.items() if name not in fixed]
    family.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]
    family.__doc__ = doc
    return family


def lookup_family(name: str) -> tuple[Builder, Surgery]:
    """The builder and surgery of family ``name``; a ValueError names the known ones."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; allowed: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name], SURGERY[name]


def family_options(name: str) -> frozenset[str]:
    """The options a study may give family ``name`` besides its input shape and classes:
    the builder's keywords, and ``weights`` where the family loads named weights."""
    builder, surgery = lookup_family(name)
    options = set(inspect.signature(builder).parameters) - {"in_shape", "num_classes"}
    if surgery.load_weights is not None:
        options.add("weights")
    return frozenset(options)


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Refuse, before anything is built, ``options`` that family ``name`` does not take."""
    accepted = family_options(name)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"model option(s) {unknown} are not accepted by family '{name}'; "
            f"allowed: {', '.join(sorted(accepted))}"
        )


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
