"""Proof that a controlled comparison is controlled: runs that should start from the same
tensors do, bit for bit."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping

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
