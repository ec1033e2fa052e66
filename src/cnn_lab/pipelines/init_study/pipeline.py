"""The initialisation study, declared: one shared initial draw per network and seed; per
(network, scheme) run (``init_study.net_a1.hf``, ``..._s1`` per seed with ``seeds``) a node
that saves the run's initial network and the frame's training node that trains it; a check
node compares every initial tensor the runs must share; the kernels figure, the dataset
analysis and the report close it."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from cnn_lab.pipelines.init_study import nodes
from cnn_lab.pipelines.init_study.schema import InitStudyParams
from cnn_lab.study.frame import Frame, bind, declare
from cnn_lab.study.reporting import (
    ClaimSource,
    claims_pipeline,
    confusion_pipeline,
    model_analysis,
    report_inputs,
)
from cnn_lab.study.shared_nodes import combine, wide_node
from cnn_lab.study.spec import Study, Variant

STUDY = Study(nodes.STUDY, InitStudyParams, nodes.variants)
# The table the lab's claims query: a run (NetA1-DT) over seeds.
CLAIM_TABLES = {"summary": ClaimSource("summary", ("run",))}


def _seeded(name: str, variant: Variant) -> str:
    """``name`` with the variant's seed, as its label has it: ``name_s1``, or ``name``."""
    return f"{name}_s{variant.seed}" if variant.seeded else name


def shared_init(variant: Variant, network: str | None = None) -> str:
    """The shared draw of ``network`` (by default the variant's) for the variant's seed."""
    return _seeded(f"{nodes.STUDY}.{network or variant.group}.shared_init", variant)


def initialisation(variants: list[Variant]) -> Pipeline:
    """The shared draws (one node per seed), each run's initial network, the check that
    the runs share what they must, and the first-layer kernels before and after training."""
    by_seed = {v.seed: v for v in variants}  # a variant of each seed, for the names
    draws = [
        node(
            bind(nodes.shared_initial_networks, seed=seed),
            "init_study.dataset",
            [shared_init(first, network) for network in nodes.NETWORKS],
            name=_seeded("shared_initial_networks", first),
            namespace=nodes.STUDY,
        )
        for seed, first in by_seed.items()
    ]
    starts = [
        node(
            bind(nodes.initialise_run, variant=v),
            [shared_init(v), "init_study.dataset"],
            v.dataset("initial_weights"),
            name="initialise",
            namespace=v.namespace,
        )
        for v in variants
    ]
    check = wide_node(
        bind(nodes.compare_initial_states, variants=variants),
        [v.dataset("initial_weights") for v in variants],
        "init_study.initial_differences",
        name="compare_initial_states",
        namespace=nodes.STUDY,
        tags=["initialisation", "report"],
    )
    shown = [
        v for v in variants if v.seed == variants[0].seed and v["scheme"] in nodes.KERNEL_SCHEMES
    ]
    kernels = node(
        bind(nodes.plot_kernels, variants=shown),
        [v.dataset(d) for v in shown for d in ("initial_weights", "weights")],
        "init_study.figures.kernels",
        name="plot_kernels",
        namespace=nodes.STUDY,
        tags=["report"],
    )
    claims = claims_pipeline(nodes.STUDY, CLAIM_TABLES, "dataset")
    confusion = confusion_pipeline(nodes.STUDY, variants)
    initial = pipeline([*draws, *starts], tags=["initialisation"])
    return combine(initial, check, kernels, claims, confusion)


def analysis(variants: list[Variant]) -> Pipeline:
    """The shared dataset analysis, with the default-init NetA1 of the first seed mapped
    beside the raw pixels."""
    run = next(v for v in variants if (v.group, v["scheme"]) == nodes.ANALYSIS_RUN)
    inputs = ["init_study.dataset", run.dataset("weights")]
    return model_analysis(nodes.STUDY, nodes.analysis_model, inputs)


FRAME = Frame(
    prepare=nodes.prepare_dataset,
    train=nodes.train_run,
    train_inputs=("dataset", "split", "config", ".initial_weights"),
    summarise=nodes.summarise,
    plot=nodes.plot_study,
    figures=nodes.FIGURES,
    report=nodes.write_report,
    report_inputs=report_inputs(nodes.STUDY, "initial_differences", "figures.kernels"),
    analysis=analysis,
    extra=initialisation,
)


create_pipeline = declare(STUDY, FRAME)
