"""The CAM study, declared: one namespaced training node per model and seed
(``cam.small_cnn_s1`` with ``seeds``), a ``weights: pretrain`` model's source-task training
once for all its seeds, each model explained beside its training (CAM and the other saliency
methods), the localisation table against chance maps, the figures, the dataset analysis
and the report."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node, pipeline

from cnn_lab.pipelines.cam import nodes
from cnn_lab.pipelines.cam.schema import CamParams
from cnn_lab.study.frame import Frame, bind, declare, names, training_inputs
from cnn_lab.study.reporting import (
    ClaimSource,
    claims_pipeline,
    confusion_pipeline,
    model_analysis,
    report_inputs,
)
from cnn_lab.study.shared_nodes import combine, wide_node
from cnn_lab.study.spec import Study, Variant

STUDY = Study(nodes.STUDY, CamParams, nodes.variants, nodes.resolve_weights)
DATA = ["dataset", "split", "boxes"]


def source_inputs(variant: Variant) -> list[str]:
    """A ``weights: pretrain`` model also reads its source-task weights and summary."""
    if nodes.source_variant(variant) is None:
        return []
    return [f"{variant.name}.pretrained_weights", f"{variant.name}.pretrain_result"]


def pretraining(variants: list[Variant]) -> list[Any]:
    """One source-task training per ``weights: pretrain`` model (``cam.<model>.pretrain``)."""
    sources = {s.name: s for s in map(nodes.source_variant, variants) if s is not None}
    return [
        node(
            bind(nodes.pretrain_variant, variant=source),
            "cam.config",
            [f"cam.{source['model']}.pretrained_weights", f"cam.{source['model']}.pretrain_result"],
            name="pretrain",
            tags=["training"],
            namespace=f"cam.{source['model']}",
        )
        for source in sources.values()
    ]


# The tables the lab's claims query: a model's seeds, and a model's and method's seeds.
CLAIM_TABLES = {
    "summary": ClaimSource("summary", ("model",)),
    "localisation": ClaimSource("localisation", ("model", "method")),
}


def explanations(variants: list[Variant]) -> Pipeline:
    """The examples to draw, each model's CAMs and saliency methods (chance maps among
    them), the localisation table and the figures (of the first seed's models)."""
    drawn = [*DATA, "examples", "config"]  # what explaining and rendering a model read
    explain = [
        node(
            bind(nodes.explain_variant, variant=v),
            training_inputs(v, [".model", ".result", *drawn]),
            v.dataset("explained"),
            name="explain",
            tags=["cam"],
            namespace=v.namespace,
        )
        for v in variants
    ]
    explained = [v.dataset("explained") for v in variants]
    first = [v.dataset("explained") for v in variants if v.seed == variants[0].seed]
    examples = node(
        nodes.choose_examples,
        names("cam", ["dataset", "split", "config"]),
        "cam.examples",
        name="choose_examples",
        namespace="cam",
    )
    report = [
        wide_node(
            nodes.localisation_table,
            ["cam.config", *explained],
            "cam.localisation",
            name="localisation_table",
            namespace="cam",
        ),
        node(
            nodes.render,
            [*names("cam", drawn), *first],
            [f"cam.figures.{f}" for f in nodes.FIGURES],
            name="render",
            namespace="cam",
        ),
    ]
    return combine(
        pipeline([examples], tags=["data"]),
        pretraining(variants),
        explain,
        pipeline(report, tags=["report"]),
        claims_pipeline(nodes.STUDY, CLAIM_TABLES, "dataset"),
        confusion_pipeline(nodes.STUDY, variants),
    )


def analysis(variants: list[Variant]) -> Pipeline:
    """The shared dataset analysis, with the first model's features (first seed) mapped
    beside the raw pixels."""
    first = variants[0]
    inputs = ["cam.dataset", "cam.config", first.dataset("result"), first.dataset("weights")]
    return model_analysis("cam", bind(nodes.analysis_model, variant=first), inputs)


FRAME = Frame(
    prepare=nodes.prepare_dataset,
    prepare_outputs=("dataset", "boxes"),
    train=nodes.train_variant,
    variant_inputs=source_inputs,
    train_outputs=("result", "weights", "model"),
    summarise=nodes.summarise,
    summary_outputs=("summary",),
    report=nodes.write_report,
    figures=nodes.FIGURES,
    report_inputs=report_inputs(nodes.STUDY, "localisation"),
    analysis=analysis,
    extra=explanations,
)


create_pipeline = declare(STUDY, FRAME)
