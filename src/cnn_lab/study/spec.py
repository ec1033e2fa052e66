"""What a study is: its parameter schema and the variants it trains, each with its seed.

A :class:`Variant` carries everything that identifies one trained network (its group, its
name, its options and the seed it trains with), so a result never has to be matched back
to a seed by position, and a training node needs nothing bound beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from cnn_lab.study.params import ParameterError, validate_parameters
from cnn_lab.study.training_params import check_precision


@dataclass(frozen=True)
class Variant:
    """One network a study trains, once per seed.

    ``seeded`` marks a study that repeats its variants over several seeds: then the seed
    is part of every name (``mlp_d8_s1``), else names carry none (``mlp_d8``).
    """

    study: str
    name: str
    seed: int
    group: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    seeded: bool = False

    @property
    def label(self) -> str:
        """The name in runs, tables and file paths: ``mlp_d8``, or ``mlp_d8_s1``."""
        return f"{self.name}_s{self.seed}" if self.seeded else self.name

    @property
    def namespace(self) -> str:
        """Where the variant's nodes and datasets live: ``cnn_depth.mlp.mlp_d8``."""
        return ".".join(p for p in (self.study, self.group, self.label) if p)

    @property
    def path(self) -> str:
        """The variant in log lines: the same name kedro-viz and the summary show."""
        return self.namespace

    def dataset(self, name: str) -> str:
        return f"{self.namespace}.{name}"

    def __getitem__(self, key: str) -> Any:
        return self.options[key]


def training_seeds(config: Mapping[str, Any]) -> list[int]:
    """The seeds every variant trains with: ``seeds``, else the one ``seed``."""
    return list(config.get("seeds") or [config["seed"]])


def repeat_over_seeds(
    study: str,
    config: Mapping[str, Any],
    entries: Iterable[tuple[str | None, str, Mapping[str, Any]]],
) -> list[Variant]:
    """Every ``(group, name, options)`` entry once per training seed: seeds are a loop
    around the grid, never part of a variant's options."""
    seeds = training_seeds(config)
    seeded = len(seeds) > 1
    return [
        Variant(study, name, seed, group, dict(options), seeded)
        for group, name, options in entries
        for seed in seeds
    ]


@dataclass(frozen=True)
class Study:
    """A study's declaration: the parameters it accepts and the grid they define.

    ``schema`` validates ``params:<name>``; ``grid`` turns the validated configuration
    into variants; ``check(config, raw)`` adds what a schema cannot express: checks across
    keys (raising :class:`ParameterError`) and warnings about the parameters as given.
    """

    name: str
    schema: type[BaseModel]
    grid: Callable[[Mapping[str, Any]], Sequence[Variant]]
    check: Callable[[dict[str, Any], Any], None] | None = None

    def validate(self, raw: Any) -> dict[str, Any]:
        """The validated configuration as plain data, or one error listing every problem."""
        from cnn_lab.runtime.hooks import runtime_parameters

        overrides = runtime_parameters().get(self.name) or {}
        config = validate_parameters(self.schema, raw, self.name, overrides).model_dump()
        if "performance" in config:
            check_precision(config, self.name)
        if self.check is not None:
            self.check(config, raw)
        return config

    def variants(self, raw: Any) -> list[Variant]:
        """The variants of the run's parameters, built from the *validated* configuration;
        none when they are invalid (the validation node then reports every problem)."""
        try:
            config = validate_parameters(self.schema, raw, self.name).model_dump()
        except ParameterError:
            return []
        return list(self.grid(config))
