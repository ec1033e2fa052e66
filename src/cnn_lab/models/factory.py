"""One way to get a network: build it, load weights, replace its head, freeze layers.

Every study builds through :func:`build_model`, so pretrained weights, heads and freezing
presets mean the same everywhere, and every network records how to build it again
(``model.build_spec``) for checkpoints that hold a state dict beside that spec.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from torch import Tensor, nn

from cnn_lab.models.registry import Surgery, lookup_family

# A weights name the family understands ("none", "imagenet", a checkpoint path), or a
# source network's state dict, loaded as a backbone (every tensor but the head).
Weights = str | Mapping[str, Tensor] | None
NO_WEIGHTS = ("none", None)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Head:
    """A fresh classifier replacing the built one, after weights are loaded."""

    num_classes: int
    dropout: float = 0.0


def build_model(
    family: str,
    /,
    *,
    weights: Weights = "none",
    head: Head | Mapping[str, Any] | None = None,
    freeze: str = "all",
    freeze_bn_stats: bool = True,
    weights_key: str = "weights",
    **options: Any,
) -> nn.Module:
    """A network of ``family`` built with the family's keyword ``options``, then
    ``weights`` loaded, the ``head`` replaced and the ``freeze`` preset applied, in that
    order. ``freeze_bn_stats`` also fixes the frozen layers' BatchNorm statistics.
    ``weights_key`` names the weights in error messages: the parameter to set for a name,
    the source for a state dict. The result carries ``build_spec`` (see :func:`rebuild`).
    """
    builder, surgery = lookup_family(family)
    head = Head(**head) if isinstance(head, Mapping) else head
    _check_supported(family, surgery, weights, head, freeze)
    state = _weights_state(surgery, weights, options, weights_key)
    model = builder(**options)
    if state is not None:
        assert surgery.load_backbone is not None  # checked by _check_supported
        source = weights if isinstance(weights, str) else weights_key
        surgery.load_backbone(model, state, source=source)
    if head is not None and surgery.replace_head is not None:
        surgery.replace_head(model, head.num_classes, dropout=head.dropout)
    if surgery.freeze is not None:
        surgery.freeze(model, freeze, freeze_bn_stats=freeze_bn_stats)
    model.build_spec = build_spec(family, options, head, freeze, freeze_bn_stats)
    return model


def rebuild(spec: Mapping[str, Any]) -> nn.Module:
    """A network with the architecture (state_dict keys and shapes) and the trainable
    parameters ``spec`` describes, freshly initialised: load its state_dict next."""
    return build_model(spec["family"], **spec["options"])


def build_spec(
    family: str,
    options: Mapping[str, Any],
    head: Head | None,
    freeze: str,
    freeze_bn_stats: bool,
) -> dict[str, Any]:
    """JSON-ready arguments that rebuild the architecture. The weights are left out: a
    checkpoint stores the tensors, and a rebuild should neither download nor read files.
    Freezing stays in: frozen BatchNorm layers have different state_dict keys."""
    spec = {
        "family": family,
        "options": {
            **_jsonable(dict(options)),
            "head": asdict(head) if head is not None else None,
            "freeze": freeze,
            "freeze_bn_stats": freeze_bn_stats,
        },
    }
    json.dumps(spec)  # a TypeError here names the option that cannot be saved
    return spec


def _jsonable(value: Any) -> Any:
    """Tuples as lists, recursively: what JSON (and a round trip through it) gives back."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _check_supported(
    name: str, surgery: Surgery, weights: Weights, head: Head | None, freeze: str
) -> None:
    """Refuse, before anything is built, what the family cannot do."""
    if freeze not in surgery.freeze_presets:
        raise ValueError(
            f"unknown freezing preset {freeze!r} for model family {name!r}; "
            f"allowed: {', '.join(surgery.freeze_presets)}"
        )
    if head is not None and surgery.replace_head is None:
        raise ValueError(f"model family {name!r} cannot replace its head")
    if weights not in NO_WEIGHTS and surgery.load_backbone is None:
        raise ValueError(f"model family {name!r} cannot load weights; allowed: none")
    if isinstance(weights, str) and weights not in NO_WEIGHTS and surgery.load_weights is None:
        raise ValueError(f"model family {name!r} has no named weights; allowed: none")


def _weights_state(
    surgery: Surgery, weights: Weights, options: Mapping[str, Any], key: str
) -> Mapping[str, Tensor] | None:
    """The state dict to load, read before the network is built so a missing file fails
    fast; ``None`` keeps the family's own initialisation."""
    if weights in NO_WEIGHTS:
        return None
    if isinstance(weights, str):
        assert surgery.load_weights is not None  # checked by _check_supported
        return surgery.load_weights(weights, options, key=key)
    return weights


def weights_missing(
    family: str, options: Mapping[str, Any], *, key: str, scratch: bool, scratch_key: str
) -> bool:
    """True when the weights ``options`` name cannot be had and the network may train from
    scratch instead (``scratch``, the parameter ``scratch_key``); missing weights otherwise
    fail here, naming that parameter, so a study can check before any data is read."""
    from cnn_lab.models.resnet import WeightsUnavailableError

    _, surgery = lookup_family(family)
    weights = options.get("weights", "none")
    if weights in NO_WEIGHTS or surgery.load_weights is None:
        return False
    try:
        surgery.load_weights(weights, options, key=key)
    except WeightsUnavailableError as err:
        if not scratch:
            raise WeightsUnavailableError(
                f"{err} (or set {scratch_key}: true to train it from scratch instead)"
            ) from err
        logger.warning(
            "%s; training it FROM SCRATCH with every layer trainable instead (%s is "
            "true), so it is not the pretrained model",
            err,
            scratch_key,
        )
        return True
    return False
