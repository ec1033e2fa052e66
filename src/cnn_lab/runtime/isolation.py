"""What keeps one ``kedro run`` from reading another's files or leaking its secrets.

Kedro loads the *latest* version of a versioned dataset, so a run that saved version A
could load version B that a concurrent run saved a moment later. Every versioned dataset
the run produces is pinned to load this run's own save version instead (``--load-versions``
still wins). Datasets the run only reads keep Kedro's "latest" (a partial run such as
``--from-nodes`` needs the earlier run's outputs).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
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
