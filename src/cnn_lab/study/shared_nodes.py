"""Nodes (and the node group) more than one study uses, written once."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any

from kedro.pipeline import Node, Pipeline

from cnn_lab.data.sources import DatasetBundle
from cnn_lab.data.splits import split_bundle


class _WideNode(Node):
    """A node that reads a dataset of every variant (a summary, a report).

    Kedro's ``Node.__hash__`` hashes the node's whole input list on every call, and
    building a pipeline hashes a node once per dataset it reads and per edge, so a node
    reading N results made every build quadratic in N (17 s of 20 at 9,000 variants).
    Nodes are immutable, so this one hashes once. The cached hash is left out of a pickle
    (worker processes hash strings differently)."""

    @cached_property
    def _hash(self) -> int:
        return hash(self._unique_key)

    def __hash__(self) -> int:
        return self._hash

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_hash", None)
        return state

    def _copy(self, **overwrite_params: Any) -> Node:
        copied = super()._copy(**overwrite_params)  # Kedro copies to tag or namespace
        copied.__class__ = _WideNode
        return copied


def wide_node(func: Callable[..., Any], inputs: Any, outputs: Any, **kwargs: Any) -> Node:
    """``kedro.pipeline.node`` for a node whose inputs grow with the grid (one dataset per
    variant): the same node, hashed once instead of once per use."""
    return _WideNode(func, inputs, outputs, **kwargs)


def combine(*parts: Pipeline | Node | Iterable[Pipeline | Node]) -> Pipeline:
    """One pipeline of ``parts`` (pipelines, nodes, or iterables of either), built once.

    ``a + b + c`` and ``sum(parts, Pipeline([]))`` construct, validate and toposort a
    whole new pipeline at every addition: quadratic in the number of variants, minutes
    for a grid of thousands. This validates the union once. Nodes shared by two parts
    (equal nodes) are kept once, as ``+`` does.
    """
    flat: dict[Node, None] = {}  # ordered and without repeats; Pipeline checks names
    for part in parts:
        items = [part] if isinstance(part, (Pipeline, Node)) else part
        for item in items:
            flat.update(dict.fromkeys(item.nodes if isinstance(item, Pipeline) else [item]))
    return Pipeline(list(flat))


def split_dataset(bundle: DatasetBundle, config: dict[str, Any]) -> dict[str, Any]:
    """Stratified split from a validated study config (``seed``, ``data.val_ratio`` and,
    for sources without an official test set, ``data.test_ratio``)."""
    data = config["data"]
    return split_bundle(
        bundle, val_ratio=data["val_ratio"], seed=config["seed"], test_ratio=data["test_ratio"]
    )
