"""Proof that a controlled comparison is controlled: runs that should start from the same
tensors do, bit for bit."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping

import pandas as pd
import torch
from torch import Tensor

# (run_a, run_b, tensor name) -> why the two runs must share it, or None if they need not.
SharingRule = Callable[[str, str, str], "str | None"]


def _difference_norm(a: Tensor | None, b: Tensor | None) -> float:
    if a is None or b is None or a.shape != b.shape:
        return math.inf  # a tensor the rule expects is missing or has another shape
    return float((a.detach().double().cpu() - b.detach().double().cpu()).norm())


def pairwise_differences(
    states: Mapping[str, Mapping[str, Tensor]], should_share: SharingRule
) -> pd.DataFrame:
    """One row per pair of runs and tensor they should share: the norm of the difference
    (0.0 when identical) and whether the tensors are exactly equal."""
    rows = []
    for (run_a, state_a), (run_b, state_b) in itertools.combinations(states.items(), 2):
        for name in dict.fromkeys([*state_a, *state_b]):
            why = should_share(run_a, run_b, name)
            if why is None:
                continue
            a, b = state_a.get(name), state_b.get(name)
            norm = _difference_norm(a, b)
            rows.append(
                {
                    "tensor": name,
                    "run_a": run_a,
                    "run_b": run_b,
                    "shared_because": why,
                    "difference_norm": norm,
                    "identical": norm == 0.0 and bool(torch.equal(a, b)),
                }
            )
    columns = ["tensor", "run_a", "run_b", "shared_because", "difference_norm", "identical"]
    return pd.DataFrame(rows, columns=columns)


def differences_by_seed(
    runs: Iterable[tuple[int, str, Mapping[str, Tensor]]], should_share: SharingRule
) -> pd.DataFrame:
    """:func:`pairwise_differences` among the runs of each seed (``runs``: seed, run name,
    initial state dict): runs of different seeds start from different draws by design.
    With several seeds the table gains a ``seed`` column."""
    by_seed: dict[int, dict[str, Mapping[str, Tensor]]] = {}
    for seed, name, state in runs:
        by_seed.setdefault(seed, {})[name] = state
    tables = [
        pairwise_differences(states, should_share).assign(seed=s) for s, states in by_seed.items()
    ]
    table = pd.concat(tables, ignore_index=True)
    return table.drop(columns="seed") if len(by_seed) == 1 else table


def check_summary(differences: pd.DataFrame) -> pd.DataFrame:
    """The check in a few rows: per tensor and reason to share it, how many pairs of runs
    were compared, how many were identical, and the largest difference."""
    return (
        differences.groupby(["tensor", "shared_because"], sort=False)
        .agg(
            pairs=("identical", "size"),
            identical=("identical", "sum"),
            max_difference_norm=("difference_norm", "max"),
        )
        .reset_index()
    )


def check_problems(differences: pd.DataFrame) -> list[str]:
    """Initial tensors that should have been shared but were not: the comparison of those
    runs is not controlled."""
    differing = differences[~differences["identical"]]
    return [
        f"initial tensor {row.tensor} differs between {row.run_a} and {row.run_b} "
        f"(difference norm {row.difference_norm:.4g}"
        + (f", seed {row.seed}" if "seed" in differences else "")
        + ")"
        for row in differing.itertuples()
    ]
