"""The study frame as a Kedro pipeline, declared once for every study:

    validate -> prepare -> split -> one training node per variant -> summarise -> plot
             -> dataset analysis -> report

A study fills in the steps (its :class:`Frame`) and may add nodes of its own beside them
(transfer's baselines and search, cam's explanations); the frame names every node and
dataset the same way for all studies, so kedro-viz folds each variant into its namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Node, Pipeline, node, pipeline

from cnn_lab.study.shared_nodes import combine, split_dataset, wide_node
from cnn_lab.study.spec import Study, Variant


@dataclass(frozen=True)
class Frame:
    """The steps of one study. Dataset names are short (``dataset``, ``split``) and
    prefixed with the study's name; ``params:...`` names pass through as they are.

    ``prepare`` reads ``config`` and writes ``prepare_outputs``; ``train`` is called once
    per variant as ``train(*train_inputs, *variant_inputs(variant), variant=variant)`` and
    writes the variant's ``train_outputs``. In both input lists a name starting with a dot
    (``.initial_weights``) is the variant's own dataset, written by the study's ``extra``
    nodes; ``variant_inputs`` names what one variant reads beyond the rest (transfer's
    tuned model reads the search's best configuration). ``summarise`` reads every
    variant's ``result``; ``report`` reads ``report_inputs`` (or ``report_inputs(variants)``:
    full names, for a report that reads datasets of the variants) then the figures.
    ``analysis`` and ``extra`` add the study's own nodes, given the run's variants.
    """

    prepare: Callable[..., Any]
    train: Callable[..., Any]
    summarise: Callable[..., Any]
    report: Callable[..., Any]
    report_inputs: Sequence[str] | Callable[[list[Variant]], Sequence[str]]
    prepare_outputs: Sequence[str] = ("dataset",)
    split: Callable[..., Any] | None = split_dataset
    split_inputs: Sequence[str] = ("dataset", "config")
    train_inputs: Sequence[str] = ("dataset", "split", "config")
    train_outputs: Sequence[str] = ("result", "weights")
    variant_inputs: Callable[[Variant], Sequence[str]] | None = None
    summary_outputs: Sequence[str] = ("summary", "history")
    plot: Callable[..., Any] | None = None
    plot_inputs: Sequence[str] = ("summary", "history")
    figures: Sequence[str] = ()
    analysis: Callable[[list[Variant]], Pipeline] | None = None
    extra: Callable[[list[Variant]], Pipeline] | None = None


def bind(func: Callable[..., Any], **kwargs: Any) -> Callable[..., Any]:
    """``func`` with ``kwargs`` bound, keeping its name and signature for Kedro and kedro-viz."""
    return update_wrapper(partial(func, **kwargs), func)


def names(study: str, short: Sequence[str]) -> list[str]:
    return [s if s.startswith("params:") else f"{study}.{s}" for s in short]


def training_inputs(variant: Variant, short: Sequence[str]) -> list[str]:
    """:func:`names`, where ``.name`` is the variant's own ``<namespace>.name``."""
    return [
        variant.dataset(s[1:]) if s.startswith(".") else names(variant.study, [s])[0] for s in short
    ]


def training_node(frame: Frame, variant: Variant) -> Node:
    """The variant's training node in its namespace, built directly: wrapping it in
    ``pipeline(..., namespace=...)`` builds and validates three pipelines per variant,
    a third of the start-up of a grid of thousands."""
    own = frame.variant_inputs(variant) if frame.variant_inputs else ()
    return node(
        bind(frame.train, variant=variant),
        inputs=training_inputs(variant, [*frame.train_inputs, *own]),
        outputs=[variant.dataset(o) for o in frame.train_outputs],
        name="train",
        tags=["training"],
        namespace=variant.namespace,
    )


def study_pipeline(study: Study, frame: Frame, raw: Mapping[str, Any] | None) -> Pipeline:
    """The whole study for the run's parameters ``raw`` (``params:<study>``). Every
    study-level step sits in the study's namespace, so kedro-viz folds the whole study
    into one box and keeps the variants' outputs inside it."""
    name = study.name
    variants = study.variants(raw)
    step = partial(node, namespace=name)
    steps = [
        step(study.validate, f"params:{name}", f"{name}.config", name="validate_parameters"),
        step(
            frame.prepare,
            f"{name}.config",
            _short(name, frame.prepare_outputs),
            name="prepare_dataset",
        ),
    ]
    if frame.split is not None:
        steps.append(
            step(
                frame.split, names(name, frame.split_inputs), f"{name}.split", name="split_dataset"
            )
        )
    opening = pipeline(steps, tags=["data"])
    if not variants:  # invalid parameters: the validation node runs alone and says why
        return opening
    training = [training_node(frame, v) for v in variants]
    closing = pipeline(_report_nodes(name, frame, variants), tags=["report"])
    analysis = frame.analysis(variants) if frame.analysis else Pipeline([])
    extra = frame.extra(variants) if frame.extra else Pipeline([])
    return combine(opening, training, extra, analysis, closing)


def _report_nodes(name: str, frame: Frame, variants: list[Variant]) -> list[Node]:
    figures = [f"{name}.figures.{f}" for f in frame.figures]
    results = [v.dataset("result") for v in variants]
    step = partial(node, namespace=name)
    nodes = [
        wide_node(
            frame.summarise,
            results,
            _short(name, frame.summary_outputs),
            name="summarise",
            namespace=name,
        )
    ]
    if frame.plot is not None:
        nodes.append(step(frame.plot, names(name, frame.plot_inputs), figures, name="plot"))
    inputs = frame.report_inputs
    inputs = inputs(variants) if callable(inputs) else names(name, inputs)
    report = [f"{name}.report.html", f"{name}.report.md"]
    nodes.append(step(frame.report, [*inputs, *figures], report, name="write_report"))
    return nodes


def _short(study: str, outputs: Sequence[str]) -> str | list[str]:
    """:func:`names` of ``outputs``, one name alone as a string (a node's single output)."""
    full = names(study, outputs)
    return full[0] if len(full) == 1 else full


def declare(study: Study, frame: Frame) -> Callable[..., Pipeline]:
    """A study module's ``create_pipeline`` (what Kedro's ``find_pipelines`` looks for):
    the study's pipeline for the parameters of the run being started."""

    def create_pipeline(**kwargs: Any) -> Pipeline:
        from cnn_lab.runtime.hooks import run_parameters

        return study_pipeline(study, frame, run_parameters().get(study.name))

    return create_pipeline
