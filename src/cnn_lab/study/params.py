"""Parameter validation: one error listing every problem, each with its key path,
the value given and what is allowed, raised before any data is loaded or trained on."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

Schema = TypeVar("Schema", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every parameter schema: unknown keys (typos) are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterError(ValueError):
    """Raised with every problem of a parameter block, one per line."""


def _describe(error: dict[str, Any], root: str) -> str:
    path = ".".join([root, *(str(part) for part in error["loc"])])
    given = error.get("input")
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown key (given {given!r}); check its spelling against the defaults"
    if error["type"] == "missing":
        return f"{path}: required key is missing"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return f"{path}: got {given!r}; {message}"


def validate_parameters(schema: type[Schema], raw: Any, root: str) -> Schema:
    """Parse ``raw`` (the ``params:<root>`` block) with ``schema`` or raise ParameterError."""
    if not isinstance(raw, dict):
        raise ParameterError(f"{root}: expected a mapping of parameters, got {raw!r}")
    try:
        return schema.model_validate(raw)
    except ValidationError as err:
        problems = [_describe(e, root) for e in err.errors()]
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
