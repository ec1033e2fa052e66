"""The labs' claims, declared in YAML beside each study's parameters and checked against
the run's own tables (docs/claims.md).

A claim names rows of a table (``where``), a metric, a comparison and a reference (a
number, a multiple of chance, or other rows). Rows repeated over seeds are judged with
their seed-to-seed spread, with the verdict helpers of :mod:`cnn_lab.evaluation.findings`.
Nothing here knows Kedro: a study hands over its tables and the run's env.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cnn_lab.evaluation.findings import fmt, mean_text, spread_verdict, std_verdict

HOLDS = "holds"
FAILS = "does not hold"
WITHIN_SPREAD = "within the seed spread"
NOT_MEASURED = "not measured in this run"
# A claim declared for other envs (a numeric claim, meaningful in the lab's setting only).
OTHER_ENV = "not checked in this env"
VERDICTS = (HOLDS, FAILS, WITHIN_SPREAD, NOT_MEASURED, OTHER_ENV)
CLAIM_COLUMNS = ("claim", "lab reports", "this run measured", "verdict")
ANY_ENV = "any"
COMPARISONS = ("above", "below", "near", "reaches", "order")
Scalar = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _key_error(key: str, message: str) -> PydanticCustomError:
    # The type params.validate_parameters words as "<path>.<key>: <message>".
    return PydanticCustomError("key_error", message, {"key": key})


class Span(_Strict):
    """A filter on a numeric column: ``{min: 16, max: 56}``, or values to leave out:
    ``{not: 8}``."""

    min: float | None = None
    max: float | None = None
    not_: Annotated[list[Scalar] | None, BeforeValidator(lambda v: _listed(v))] = Field(
        None, alias="not"
    )


def _listed(value: Any) -> Any:
    return value if value is None or isinstance(value, list) else [value]


def _filter_kind(value: Any) -> str:
    if isinstance(value, Mapping | Span):
        return "span"
    return "values" if isinstance(value, list) else "value"


# A ``where`` value: one value, several values (each must be in the run), or a span.
Filter = Annotated[
    Annotated[Scalar, Tag("value")]
    | Annotated[list[Scalar], Tag("values")]
    | Annotated[Span, Tag("span")],
    Discriminator(_filter_kind),
]


class Query(_Strict):
    """Rows of one of the study's tables, averaged over seeds per variant. ``where``
    narrows the rows; every value it lists must be in the run (else the claim is not
    measured); ``pick`` reduces several variants to the ``best`` or ``worst`` by
    ``rank_by`` (default: the claim's metric), or keeps ``each``."""

    table: str = "summary"
    where: dict[str, Filter] = Field(default_factory=dict)
    pick: Literal["each", "best", "worst"] = "each"
    rank_by: str | None = None


class Chance(_Strict):
    """A reference at ``times_chance`` x chance (1 / number of classes)."""

    times_chance: float = Field(gt=0)


def _reference_kind(value: Any) -> str:
    # Called on the YAML's plain data, and on the models when a configuration is dumped.
    if isinstance(value, Chance) or (isinstance(value, Mapping) and "times_chance" in value):
        return "chance"
    return "rows" if isinstance(value, Mapping | Query) else "number"


Reference = Annotated[
    Annotated[float, Tag("number")]
    | Annotated[Chance, Tag("chance")]
    | Annotated[Query, Tag("rows")],
    Discriminator(_reference_kind),
]


class Check(_Strict):
    """One comparison: ``subject`` ``above``/``below`` ``reference``, ``near`` a number
    within ``tolerance``, ``reaches`` a number less ``tolerance``, or the queries of
    ``order`` ranked best first. ``paired_by`` compares each subject variant with the
    reference variant that has the same values of those columns."""

    metric: str | None = None
    compare: Literal["above", "below", "near", "reaches", "order"] | None = None
    subject: Query | None = None
    reference: Reference | None = None
    tolerance: float | None = Field(None, ge=0)
    order: list[Query] | None = Field(None, min_length=2)
    paired_by: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> Check:
        _check_rules(self)
        return self


def _check_rules(check: Check) -> None:
    """What each comparison needs, each problem naming its key."""
    if check.compare is None:
        raise _key_error("compare", f"required: one of {', '.join(COMPARISONS)}")
    if check.metric is None:
        raise _key_error("metric", "required: the table column the claim is about")
    if check.compare == "order":
        if check.order is None:
            raise _key_error("order", "required with compare: order (the queries, best first)")
        if check.subject is not None or check.reference is not None:
            raise _key_error("compare", "order takes 'order', not subject and reference")
        return
    if check.order is not None:
        raise _key_error("order", f"only with compare: order (this claim: {check.compare})")
    if check.subject is None:
        raise _key_error("subject", f"required with compare: {check.compare}")
    if check.reference is None:
        raise _key_error("reference", f"required with compare: {check.compare}")
    numeric = check.compare in ("near", "reaches")
    if numeric and not isinstance(check.reference, float | int):
        raise _key_error("reference", f"compare: {check.compare} takes a number")
    if check.compare == "near" and check.tolerance is None:
        raise _key_error("tolerance", "required with compare: near (how close is close)")
    if check.compare in ("above", "below") and check.tolerance is not None:
        raise _key_error("tolerance", "only with compare: near or reaches")
    if check.paired_by and not isinstance(check.reference, Query):
        raise _key_error("paired_by", "only with a reference of rows (a query)")


def _envs(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class ClaimSpec(Check):
    """A lab's claim: its words, where the lab said it (with the lab's number), the envs
    it is checked in (``any``, or those that run the lab's setting, e.g. ``paper``), and
    either one check (the keys of :class:`Check`) or ``all``: several that must all hold."""

    claim: str = Field(min_length=1)
    source: str = Field(min_length=1)
    env: Annotated[list[str], BeforeValidator(_envs)] = Field(
        default_factory=lambda: [ANY_ENV], min_length=1
    )
    all: list[Check] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _complete(self) -> ClaimSpec:
        if self.all is None:
            _check_rules(self)
            return self
        # Compared with the defaults, not the keys given: a dumped claim lists every key.
        flat = [k for k in Check.model_fields if getattr(self, k) not in (None, [])]
        if flat:
            raise _key_error(flat[0], "give the checks under 'all', or one check without 'all'")
        return self

    @property
    def checks(self) -> list[Check]:
        return list(self.all) if self.all is not None else [self]

    def checked_in(self, env: str) -> bool:
        return ANY_ENV in self.env or env in self.env


# ``<study>.claims``: claims by id, so an env (conf/paper) can add or change one by its key.
Claims = dict[str, ClaimSpec]


class _Container(_Strict):
    claims: Claims


def parse_claims(raw: Mapping[str, Any] | None) -> Claims:
    """Validated claims from their plain-data form (YAML, or a dumped configuration)."""
    return _Container.model_validate({"claims": dict(raw or {})}).claims


@dataclass(frozen=True)
class Table:
    """A table claims can query: one row per variant and seed. ``by`` are the columns
    naming a variant (rows sharing them are its seeds); ``label`` formats a variant's
    name from them (``"{family}_d{depth}"``), else their values are joined."""

    frame: pd.DataFrame
    by: Sequence[str]
    label: str | None = None


class NotMeasured(Exception):
    """The run lacks what a claim is about; the message says what is missing."""


def worst(*verdicts: str) -> str:
    """The weakest of several verdicts a claim needs together: does not hold, then within
    the seed spread, then holds."""
    for verdict in (FAILS, WITHIN_SPREAD):
        if verdict in verdicts:
            return verdict
    return HOLDS


def _all_repeated(*stats: pd.Series) -> bool:
    return min(s["seeds"] for s in stats) > 1


def beats(better: pd.Series, worse: pd.Series) -> str:
    """The verdict on "``better`` is above ``worse``" (seed statistics): with several seeds
    the gap must exceed the seed-to-seed spread (the sum of the stds, as
    :func:`~cnn_lab.evaluation.findings.spread_verdict` words it) to hold, and fall below
    minus the spread to fail."""
    gap = better["mean"] - worse["mean"]
    if not _all_repeated(better, worse):
        return HOLDS if gap > 0 else FAILS
    spread = better["std"] + worse["std"]
    return HOLDS if gap > spread else FAILS if gap < -spread else WITHIN_SPREAD


def versus(stats: pd.Series, reference: float, *, above: bool = True) -> str:
    """The verdict on "``stats`` is above (or below) the exact ``reference``" (a threshold,
    a baseline fitted once): with several seeds the whole mean ± std band must be on the
    claimed side to hold, and on the other side to fail."""
    gap = (stats["mean"] - reference) * (1 if above else -1)
    std = stats["std"] if stats["seeds"] > 1 and pd.notna(stats["std"]) else 0.0
    if gap > std:
        return HOLDS
    if gap < -std or (std == 0 and gap == 0):
        return FAILS
    return WITHIN_SPREAD


def near(stats: pd.Series, target: float, tolerance: float) -> str:
    """The verdict on "``stats`` is ``target`` within ``tolerance``": with several seeds
    the whole mean ± std band must be inside to hold, and outside to fail."""
    distance = abs(stats["mean"] - target)
    std = stats["std"] if stats["seeds"] > 1 and pd.notna(stats["std"]) else 0.0
    if distance + std <= tolerance:
        return HOLDS
    return FAILS if distance - std > tolerance else WITHIN_SPREAD


@dataclass(frozen=True)
class _Context:
    tables: Mapping[str, Table]
    chance: float | None


def _select(query: Query, metric: str, context: _Context) -> pd.DataFrame:
    """The query's variants: one row each with ``mean``, ``std``, ``seeds`` and ``name``."""
    table = context.tables.get(query.table)
    if table is None:
        known = ", ".join(context.tables)
        raise NotMeasured(f"this study has no table {query.table!r} (its tables: {known})")
    frame, by = table.frame, list(table.by)
    rank = query.rank_by or metric
    for column in dict.fromkeys([metric, rank, *query.where]):
        if column not in frame:
            raise NotMeasured(f"the {query.table} table has no column {column!r}")
    rows, said = frame, []
    for column, wanted in query.where.items():
        rows = _narrow(rows, column, wanted, said, query.table)
        said.append(f"{column} {_words(wanted)}")
    rows = rows[rows[metric].notna()]
    if rows.empty:
        raise NotMeasured(f"no finite {metric} with {', '.join(said) or 'any row'} in this run")
    groups = rows.groupby(by, sort=False, dropna=False)
    stats = groups[metric].agg(mean="mean", std="std", seeds="count")
    stats["_rank"] = groups[rank].mean()
    stats = stats.reset_index()
    for column in rows.columns.difference([*by, metric]):
        if column not in stats:  # the variant's other constant columns (for paired_by)
            values = groups[column].agg(
                lambda s: s.iloc[0] if s.nunique(dropna=False) == 1 else None
            )
            stats[column] = values.to_numpy()
    stats["name"] = [_name(row, table, frame) for _, row in stats.iterrows()]
    if query.pick != "each" and len(stats) > 1:
        ordered = stats.sort_values("_rank", ascending=query.pick == "worst", kind="stable")
        stats = ordered.iloc[:1]
        stats = stats.assign(name=f"the {query.pick} by {rank}, {stats['name'].iloc[0]}")
    return stats.reset_index(drop=True)


def _narrow(
    rows: pd.DataFrame, column: str, wanted: Any, said: list[str], table: str
) -> pd.DataFrame:
    values = rows[column]
    among = f" among the rows with {', '.join(said)}" if said else ""
    if isinstance(wanted, Span):
        keep = pd.Series(True, index=rows.index)
        if wanted.min is not None:
            keep &= pd.to_numeric(values, errors="coerce") >= wanted.min
        if wanted.max is not None:
            keep &= pd.to_numeric(values, errors="coerce") <= wanted.max
        if wanted.not_:
            keep &= ~values.isin(wanted.not_)
        if not keep.any():
            seen = ", ".join(str(v) for v in dict.fromkeys(values)) or "none"
            raise NotMeasured(
                f"no {column} {_words(wanted)} in this run's {table}{among} (there: {seen})"
            )
        return rows[keep]
    listed = wanted if isinstance(wanted, list) else [wanted]
    for value in listed:
        if not (values == value).any():
            seen = ", ".join(str(v) for v in dict.fromkeys(values)) or "none"
            raise NotMeasured(
                f"{column} {value} was not in this run's {table}{among} (there: {seen})"
            )
    return rows[values.isin(listed)]


def _words(wanted: Any) -> str:
    if isinstance(wanted, Span):
        parts = []
        if wanted.min is not None:
            parts.append(f">= {wanted.min:g}")
        if wanted.max is not None:
            parts.append(f"<= {wanted.max:g}")
        if wanted.not_:
            parts.append("not " + "/".join(str(v) for v in wanted.not_))
        return " and ".join(parts)
    return "/".join(str(v) for v in wanted) if isinstance(wanted, list) else str(wanted)


def _name(row: pd.Series, table: Table, frame: pd.DataFrame) -> str:
    if table.label:
        return table.label.format(**row.to_dict())
    varying = [c for c in table.by if frame[c].nunique() > 1] or list(table.by)
    return " ".join(str(row[c]) for c in varying)


def _repeated(stats: pd.Series) -> bool:
    return stats["seeds"] > 1 and pd.notna(stats["std"])


def _relation(subject: pd.Series, reference: pd.Series, above: bool) -> tuple[str, str]:
    """``subject`` above (or below) ``reference``: with both repeated, the gap against the
    sum of their stds; with one side fitted once (exact), against the other's std."""
    a, b = (subject, reference) if above else (reference, subject)
    gap = a["mean"] - b["mean"]
    text = (
        f"{_stated(subject)} vs {_stated(reference)}: "
        f"gap {subject['mean'] - reference['mean']:+.4f}"
    )
    if _repeated(a) and _repeated(b):
        return text + spread_verdict(b, a), beats(a, b)
    if _repeated(b):
        return text + f", which {std_verdict(gap, b)}", versus(b, a["mean"], above=False)
    if _repeated(a):
        return text + f", which {std_verdict(gap, a)}", versus(a, b["mean"])
    return text, versus(a, b["mean"])


def _stated(stats: pd.Series) -> str:
    """A variant with its mean (and spread); a number by its name, which says it."""
    return str(stats["name"]) if stats.get("number") else f"{stats['name']} {mean_text(stats)}"


def _number(value: float, name: str) -> pd.Series:
    return pd.Series({"mean": value, "std": float("nan"), "seeds": 1, "name": name, "number": 1})


def _reference_rows(check: Check, context: _Context) -> pd.DataFrame:
    reference = check.reference
    if isinstance(reference, Query):
        return _select(reference, check.metric, context)
    if isinstance(reference, Chance):
        if context.chance is None:
            raise NotMeasured("this study states no chance level (1 / classes) to compare with")
        value = reference.times_chance * context.chance
        name = f"{reference.times_chance:g} x chance ({fmt(value)})"
        return pd.DataFrame([_number(value, name)])
    return pd.DataFrame([_number(float(reference), f"{float(reference):g}")])


def _pairs(check: Check, subjects: pd.DataFrame, references: pd.DataFrame) -> list[tuple]:
    if not check.paired_by:
        return [(s, r) for _, s in subjects.iterrows() for _, r in references.iterrows()]
    for column in check.paired_by:
        if column not in subjects or column not in references:
            raise NotMeasured(f"no column {column!r} to pair the variants by")
    pairs = [
        (s, r)
        for _, s in subjects.iterrows()
        for _, r in references.iterrows()
        if all(s[c] == r[c] for c in check.paired_by)
    ]
    if not pairs:
        raise NotMeasured(
            f"no {check.metric} pair with the same {', '.join(check.paired_by)} in this run"
        )
    return pairs


def _judge(check: Check, context: _Context) -> tuple[str, str]:
    """What this run measured for one check, in words with its numbers, and the verdict."""
    metric = check.metric
    if check.compare == "order":
        ranked = [_one(_select(q, metric, context)) for q in check.order]
        judged = [_relation(a, b, True) for a, b in zip(ranked, ranked[1:], strict=False)]
        return _joined(metric, judged)
    subjects = _select(check.subject, metric, context)
    if check.compare in ("near", "reaches"):
        target, tolerance = float(check.reference), check.tolerance or 0.0
        judged = []
        for _, stats in subjects.iterrows():
            if check.compare == "near":
                verdict = near(stats, target, tolerance)
                words = f"the lab's {target:g}, tolerance {tolerance:g}"
            else:
                verdict = versus(stats, target - tolerance)
                words = (
                    f"at least {fmt(target - tolerance)}: the lab's {target:g} less {tolerance:g}"
                )
            judged.append((f"{stats['name']} {mean_text(stats)} ({words})", verdict))
        return _joined(metric, judged)
    references = _reference_rows(check, context)
    above = check.compare == "above"
    judged = [_relation(s, r, above) for s, r in _pairs(check, subjects, references)]
    return _joined(metric, judged)


def _one(rows: pd.DataFrame) -> pd.Series:
    if len(rows) > 1:
        names = ", ".join(rows["name"])
        raise NotMeasured(f"an order needs one variant per query; one matched {names}")
    return rows.iloc[0]


def _joined(metric: str, judged: list[tuple[str, str]]) -> tuple[str, str]:
    return f"{metric}: " + "; ".join(t for t, _ in judged), worst(*(v for _, v in judged))


def _measured(checks: Sequence[Check], texts: Sequence[str]) -> str:
    """The checks' texts, each metric named once where consecutive checks share it."""
    parts, metric = [], None
    for check, text in zip(checks, texts, strict=True):
        parts.append(text.removeprefix(f"{metric}: ") if check.metric == metric else text)
        metric = check.metric
    return "; ".join(parts)


def claims_table(
    claims: Mapping[str, ClaimSpec],
    tables: Mapping[str, Table],
    *,
    env: str,
    chance: float | None = None,
    on: str | None = None,
) -> pd.DataFrame:
    """One row per claim: the claim, what the lab reports, what this run measured and the
    verdict. A claim whose rows the run lacks is "not measured in this run" (saying what
    is missing); one declared for other envs is "not checked in this env", with the
    run's number when it has one. ``on`` (the data that ran) starts each measurement."""
    context = _Context(tables, chance)
    rows = []
    for spec in claims.values():
        try:
            judged = [_judge(check, context) for check in spec.checks]
            measured = _measured(spec.checks, [t for t, _ in judged])
            verdict = worst(*(v for _, v in judged))
        except NotMeasured as missing:
            measured, verdict = str(missing), NOT_MEASURED
        if on:
            measured = f"on {on}: {measured}"
        if not spec.checked_in(env):
            where = " or ".join(f"--env={e}" for e in spec.env)
            measured = f"checked with {where}, the lab's setting (this run: {measured})"
            verdict = OTHER_ENV
        rows.append((spec.claim, spec.source, measured, verdict))
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))
