"""Snapshots of what a refactor of the studies must keep: ``snapshots/<study>.json``.

Each file maps a key (``graph``, ``graph_seeds_0_1``, ``summary_columns_tiny`` ...) to the
recorded value. :func:`assert_matches_snapshot` compares a value against its key; with
``UPDATE_SNAPSHOTS=1`` in the environment it rewrites that key instead (other keys of the
file are kept), so ``UPDATE_SNAPSHOTS=1 pytest <tests>`` regenerates what those tests check.
A mismatch names what was added and removed, not a diff of the whole file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE = "UPDATE_SNAPSHOTS"


def updating() -> bool:
    return os.environ.get(UPDATE, "").strip().lower() in ("1", "true", "yes", "on")


def _path(study: str) -> Path:
    return SNAPSHOTS / f"{study}.json"


def load(study: str) -> dict[str, Any]:
    path = _path(study)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _write(study: str, key: str, value: Any) -> None:
    recorded = load(study)
    recorded[key] = value
    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dict(sorted(recorded.items())), indent=1, ensure_ascii=False)
    _path(study).write_text(text + "\n", encoding="utf-8")


def _jsonable(value: Any) -> Any:
    """What ``value`` reads back as from JSON (tuples become lists ...)."""
    return json.loads(json.dumps(value))


def _changes(label: str, expected: Any, actual: Any, limit: int = 40) -> list[str]:
    """Added and removed entries of a list, or of each field of a mapping; an order change
    of a list with the same entries; a changed scalar."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        lines = [f"{label}: removed key {k!r}" for k in expected if k not in actual]
        lines += [f"{label}: added key {k!r}" for k in actual if k not in expected]
        for k in expected:
            if k in actual and expected[k] != actual[k]:
                lines += _changes(f"{label}[{k!r}]", expected[k], actual[k], limit)
        return lines
    if isinstance(expected, list) and isinstance(actual, list):
        removed = [e for e in expected if e not in actual]
        added = [a for a in actual if a not in expected]
        lines = []
        for word, items in (("removed", removed), ("added", added)):
            if items:
                shown = ", ".join(map(repr, items[:limit]))
                more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
                lines.append(f"{label}: {word} {len(items)}: {shown}{more}")
        if not lines:
            lines.append(f"{label}: same entries, new order: {actual!r}")
        return lines
    return [f"{label}: {expected!r} -> {actual!r}"]


def assert_matches_snapshot(study: str, key: str, value: Any) -> None:
    """``value`` equals ``snapshots/<study>.json[key]``; under ``UPDATE_SNAPSHOTS=1`` it
    is recorded there instead."""
    value = _jsonable(value)
    if updating():
        _write(study, key, value)
        return
    recorded = load(study)
    assert key in recorded, (
        f"no snapshot {key!r} in {_path(study)}: record it with {UPDATE}=1 and commit the file"
    )
    expected = recorded[key]
    if value != expected:
        changes = "\n  ".join(_changes(key, expected, value))
        raise AssertionError(
            f"{study}: {key} differs from {_path(study).relative_to(SNAPSHOTS.parents[2])}\n"
            f"  {changes}\n"
            f"If the change is intended, rerun with {UPDATE}=1 and commit the snapshot."
        )
