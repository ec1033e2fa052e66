"""A study's default claims (its conf/base YAML) judged on hand-made tables."""

from __future__ import annotations

import importlib

import pandas as pd

from cnn_lab.evaluation.claims import Table, claims_table, parse_claims
from cnn_lab.runtime.hooks import default_parameters


def judge(
    study: str,
    tables: dict[str, pd.DataFrame],
    *,
    env: str = "local",
    chance: float | None = None,
    on: str | None = None,
) -> pd.DataFrame:
    """The claims table of ``study``'s default claims on ``tables`` (by table name), each
    read as the study's pipeline declares it (its variant columns and label)."""
    sources = importlib.import_module(f"cnn_lab.pipelines.{study}.pipeline").CLAIM_TABLES
    claims = parse_claims(default_parameters(study)["claims"])
    read = {
        name: Table(tables[name], source.by, source.label)
        for name, source in sources.items()
        if name in tables
    }
    return claims_table(claims, read, env=env, chance=chance, on=on)


def verdicts(table: pd.DataFrame) -> dict[str, str]:
    """Claim text -> verdict."""
    return dict(zip(table["claim"], table["verdict"], strict=True))
