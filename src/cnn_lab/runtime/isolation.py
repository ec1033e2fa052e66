"""What keeps one ``kedro run`` from reading another's files or leaking its secrets.

Kedro loads the *latest* version of a versioned dataset, so a run that saved version A
could load version B that a concurrent run saved a moment later. Every versioned dataset
the run produces is pinned to load this run's own save version instead (``--load-versions``
still wins). Datasets the run only reads keep Kedro's "latest" (a partial run such as
``--from-nodes`` needs the earlier run's outputs), but a partial run refuses a set of them
that no run made together: a summary saved by a run killed before its figures, beside
the figures of an earlier run (:func:`check_read_versions`).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

REDACTED = "***"
# Whole segments only (split on ".", "_", "-", camelCase): "api_key" and "dbPassword"
# are secrets, "monkey" and "keyboard" are not.
_SECRET_SEGMENTS = frozenset(
    {"password", "passwd", "token", "secret", "key", "credential", "credentials", "apikey"}
)


def looks_secret(name: str) -> bool:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    return any(part in _SECRET_SEGMENTS for part in re.split(r"[\W_]+", spaced.lower()))


def redact_credentials(params: Any) -> Any:
    """``params`` with the value of every credential-like key (at any depth) masked."""
    if not isinstance(params, Mapping):
        return params
    return {
        key: REDACTED if looks_secret(key) else redact_credentials(value)
        for key, value in params.items()
    }


def pin_run_versions(
    catalog: Any, pipeline: Any, save_version: str, explicit: Mapping[str, str] | None
) -> list[str]:
    """Make each versioned dataset ``pipeline`` writes load ``save_version``; returns
    the names pinned. Datasets named in ``explicit`` (``--load-versions``) are left alone."""
    pinned: list[str] = []
    catalog_log = logging.getLogger("kedro.io.data_catalog")
    quiet = _DropReplacing()
    catalog_log.addFilter(quiet)  # one "Replacing dataset" warning per pinned dataset: noise
    try:
        for name in sorted(pipeline.all_outputs() - set(explicit or {})):
            if _pin(catalog, name, save_version):
                pinned.append(name)
    finally:
        catalog_log.removeFilter(quiet)
    return pinned


class _DropReplacing(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Replacing dataset")


def _pin(catalog: Any, name: str, save_version: str) -> bool:
    from kedro.io import AbstractDataset, AbstractVersionedDataset

    if not isinstance(catalog.get(name), AbstractVersionedDataset):
        return False
    config = copy.deepcopy(catalog.config_resolver.resolve_pattern(name))
    if not config.get("versioned"):
        return False  # made in code, not from the catalog: nothing to rebuild it from
    catalog[name] = AbstractDataset.from_config(
        name, config, load_version=save_version, save_version=save_version
    )
    return True


class StaleInputs(ValueError):
    """Inputs of a partial run made from an older version of another of its inputs."""


def check_read_versions(
    catalog: Any,
    pipeline: Any,
    registered: Callable[[], Any],
    explicit: Mapping[str, str] | None,
) -> None:
    """Refuse to run ``pipeline`` when a versioned dataset it only reads is older than
    another it reads that it is made from (in the pipeline ``registered()`` returns, built
    only when two or more such datasets are read).

    A full run reads no versioned dataset, so this only concerns partial runs
    (``--from-nodes``, ``--nodes``, an orchestrator's task). Kedro gives each the latest
    version; if a run saved a new summary and was killed before its figures, the latest
    figures are an earlier run's, and a report from both would mix two runs. In a run
    that completed, or in the tasks of an orchestrated run, what is made from a dataset
    is saved after it, never before. ``--load-versions`` choices are not second-guessed.
    """
    chosen = set(explicit or {})
    latest = {
        name: version
        for name in sorted(pipeline.inputs() - chosen)
        if (version := _latest_version(catalog, name)) is not None
    }
    if len(latest) < 2:
        return
    whole = registered()
    problems = []
    for name, version in latest.items():
        newer = {s: latest[s] for s in sorted(_made_from(whole, name) & latest.keys())}
        newer = {s: v for s, v in newer.items() if v > version}
        if newer:
            problems.append(_stale_message(whole, name, version, newer))
    if problems:
        shown = problems[:8] + ([f"... and {len(problems) - 8} more"] if len(problems) > 8 else [])
        raise StaleInputs(
            "this partial run would read datasets that no run made together:\n  - "
            + "\n  - ".join(shown)
            + "\nA run that saved the newer ones stopped before writing the older (killed), "
            "or they were written again alone. Run from the node named, or choose matching "
            "versions with --load-versions."
        )


def _latest_version(catalog: Any, name: str) -> str | None:
    from kedro.io import AbstractVersionedDataset, DatasetError

    try:
        dataset = catalog.get(name)
        if not isinstance(dataset, AbstractVersionedDataset):
            return None
        return dataset.resolve_load_version()
    except DatasetError:  # no version saved yet: Kedro's own error names it on load
        return None


def _made_from(registered: Any, name: str) -> set[str]:
    try:
        return set(registered.to_outputs(name).all_inputs()) - {name}
    except ValueError:  # not made by the registered pipeline (raw data, parameters)
        return set()


def _stale_message(whole: Any, name: str, version: str, newer: Mapping[str, str]) -> str:
    (writer,) = whole.only_nodes_with_outputs(name).nodes
    sources = ", ".join(f"{source} ({v})" for source, v in newer.items())
    return (
        f"{name} ({version}) is older than what it is made from: {sources}; "
        f"kedro run --from-nodes={writer.name} remakes it"
    )
