"""The depth study, declared: one namespaced training node per (group, family, depth) and
seed, so kedro-viz folds variants into groups and each can run as its own process or
orchestrator task; the dataset analysis maps the deepest variant of the first group."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from cnn_lab.pipelines.cnn_depth import nodes
from cnn_lab.pipelines.cnn_depth.schema import CnnDepthParams
from cnn_lab.study.frame import Frame, bind, declare
from cnn_lab.study.reporting import (
    ClaimSource,
    claims_pipeline,
    confusion_pipeline,
    first_finite,
    model_analysis,
    report_inputs,
)
from cnn_lab.study.spec import Study, Variant

STUDY = Study(nodes.STUDY, CnnDepthParams, nodes.variants, nodes.check_config)


def analysis(variants: list[Variant]) -> Pipeline:
    """The shared dataset analysis, with the deepest variant of the first group (its first
    family: ``mlp_d32`` in the default grid) mapped beside the raw pixels. The picker reads
    every variant's weights, ranked by that preference, and skips a diverged one."""
    lead = variants[0]
    ranked = sorted(
        variants, key=lambda v: (v.group != lead.group, v.seed != lead.seed, -v["depth"])
    )
    pick = bind(first_finite, pick=nodes.analysis_model, candidates=ranked, fixed=2)
    inputs = ["cnn_depth.dataset", "cnn_depth.config", *(v.dataset("weights") for v in ranked)]
    return model_analysis(nodes.STUDY, pick, inputs)


# The tables the lab's claims query: a variant is a (group, family, depth), over seeds.
CLAIM_TABLES = {
    "summary": ClaimSource("summary", ("group", "family", "depth"), "{family}_d{depth}")
}


def report_parts(variants: list[Variant]) -> Pipeline:
    """The lab's claims checked on the summary, and the best variant's confusion matrix."""
    claims = claims_pipeline(nodes.STUDY, CLAIM_TABLES, data="dataset")
    return claims + confusion_pipeline(nodes.STUDY, variants)


FRAME = Frame(
    prepare=nodes.prepare_dataset,
    train=nodes.train_variant,
    summarise=nodes.summarise,
    plot=nodes.plot_study,
    figures=nodes.FIGURES,
    report=nodes.write_report,
    report_inputs=report_inputs(nodes.STUDY, "history"),
    analysis=analysis,
    extra=report_parts,
)


create_pipeline = declare(STUDY, FRAME)
