"""Parameter validation: one error listing every problem, each with its key path,
the value given and what is allowed, raised before any data is loaded or trained on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

Schema = TypeVar("Schema", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every parameter schema: unknown keys (typos) are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterError(ValueError):
    """Raised with every problem of a parameter block, one per line."""


def check_batch_sizes(sizes: Mapping[str, int], train_size: int, split: str) -> None:
    """Refuse batch sizes (``sizes``: parameter key -> size) over the ``split`` training
    split's ``train_size`` images, before any training: a batch cannot hold more images
    than the split has."""
    too_big = [f"{key}: {size}" for key, size in sizes.items() if size > train_size]
    if too_big:
        raise ParameterError(
            f"batch size(s) larger than the {split} training split ({train_size} samples): "
            + "; ".join(too_big)
            + ". Lower them, or give the task more images."
        )


def key_error(key: str, message: str, **context: Any) -> PydanticCustomError:
    """An error of one key of a block, raised by a check of the whole block: the message
    names that key (``training.milestones``), not the block with all its values."""
    return PydanticCustomError("key_error", message, {"key": key, **context})


def unknown_option(key: str, owner: str, allowed: Iterable[str]) -> PydanticCustomError:
    """The error for one key of an options block that ``owner`` does not take."""
    return key_error(
        key,
        "unknown key: not an option of {owner}; allowed: {allowed}",
        owner=owner,
        allowed=", ".join(sorted(allowed)),
    )


def _describe(error: dict[str, Any], root: str, overrides: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error["loc"]]
    if error["type"] == "key_error":
        loc.append(error["ctx"]["key"])
    path = ".".join([root, *loc])
    origin = " (given with --params)" if _given(overrides, loc) else ""
    given = error.get("input")
    if error["type"] == "key_error":
        text = error["msg"]
    elif error["type"] == "extra_forbidden":
        text = f"unknown key (given {given!r}); check its spelling against the defaults"
    elif error["type"] == "missing":
        text = "required key is missing"
    else:
        message = error["msg"].removeprefix("Value error, ")
        text = f"got {given!r}; {message}"
    return f"{path}: {text}{origin}"


def _given(overrides: Mapping[str, Any], loc: list[str]) -> bool:
    """Whether the command line set ``loc`` (or a block above it)."""
    node: Any = overrides
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
        if not isinstance(node, Mapping):
            return True
    return bool(loc)


def validate_parameters(
    schema: type[Schema], raw: Any, root: str, overrides: Mapping[str, Any] | None = None
) -> Schema:
    """Parse ``raw`` (the ``params:<root>`` block) with ``schema`` or raise ParameterError
    listing every problem; ``overrides`` (the run's ``--params`` under ``root``) marks the
    problems the command line caused."""
    if not isinstance(raw, dict):
        raise ParameterError(
            f"{root}: expected a mapping of parameters, got {raw!r}; "
            f"check that conf/<env>/parameters_{root}.yml defines '{root}:'"
        )
    try:
        return schema.model_validate(raw)
    except ValidationError as err:
        problems = [_describe(e, root, overrides or {}) for e in err.errors()]
        header = f"{len(problems)} invalid parameter(s) in '{root}' (conf/<env>/parameters_*.yml):"
        raise ParameterError("\n  ".join([header, *problems])) from None


def as_list(value: Any) -> Any:
    """Lists from the command line: ``kedro run --params`` splits on commas, so a list is
    written there as ``"4 8 16"`` (or ``"4;8;16"``); YAML lists pass through unchanged."""
    if isinstance(value, str):
        items = [item for item in value.replace(";", " ").split() if item]
        return [int(item) if item.lstrip("-").isdigit() else item for item in items]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    return value


def _distinct_seeds(seeds: list[int] | None) -> list[int] | None:
    if seeds is not None and len(set(seeds)) != len(seeds):
        raise ValueError("seeds must be distinct; a repeated seed repeats the same run")
    return seeds


# A study's ``seeds``: every variant trains once per seed; null trains once, with ``seed``.
Seeds = Annotated[
    Annotated[list[int], Field(min_length=1)] | None,
    BeforeValidator(as_list),
    AfterValidator(_distinct_seeds),
]


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    if pair[0] > pair[1]:
        raise ValueError("a range is [min, max] with min <= max")
    return pair


# A range of shares (of an area, of a side) as [min, max]: both in (0, 1], min <= max.
FractionRange = Annotated[
    tuple[Annotated[float, Field(gt=0, le=1)], Annotated[float, Field(gt=0, le=1)]],
    AfterValidator(_ordered),
]


def unreached_overrides(
    study: str, raw: Mapping[str, Any], override: Mapping[str, Any]
) -> list[str]:
    """One line per ``--params <study>.training.<key>`` that a group does not see because
    its own ``groups.<name>.training.<key>`` wins (e.g. ``epochs=2`` retrains the MLPs in
    2 epochs while the CNNs keep their 8); ``raw`` is the configured block, ``override``
    the run's ``--params`` under ``study``."""
    group_overrides = override.get("groups") or {}
    lines = []
    for key, value in (override.get("training") or {}).items():
        kept = {
            name: (spec.get("training") or {})[key]
            for name, spec in (raw.get("groups") or {}).items()
            if isinstance(spec, dict)
            and key in (spec.get("training") or {})
            and spec.get("enabled", True)
            and (spec.get("training") or {})[key] != value
            and key not in ((group_overrides.get(name) or {}).get("training") or {})
        }
        if kept:
            groups = ", ".join(f"{name} ({key}={v})" for name, v in kept.items())
            also = ", ".join(f"{study}.groups.{name}.training.{key}" for name in kept)
            lines.append(
                f"--params {study}.training.{key}={value} does not reach group(s) {groups}: "
                f"they set training.{key} themselves; override {also} as well to change them"
            )
    return lines
