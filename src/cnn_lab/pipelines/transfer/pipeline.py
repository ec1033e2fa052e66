"""The transfer study, declared: data and source network first, then the feature
baselines, one namespaced training node per fine-tuning preset, per optimizer and for the
tuned model (each once per seed: ``transfer.finetune.head_s1``), the search between them,
a single node that touches the test set, both tasks' dataset analyses and the report. The
data, the source network, the baselines and the search stay on ``seed``."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Node, Pipeline, node

from cnn_lab.pipelines.transfer import nodes
from cnn_lab.pipelines.transfer.nodes import SEARCH_FIGURES, STUDY_FIGURES
from cnn_lab.pipelines.transfer.schema import TransferParams
from cnn_lab.study.frame import Frame, declare, names
from cnn_lab.study.reporting import ClaimSource, claims_pipeline, model_analysis, report_inputs
from cnn_lab.study.shared_nodes import combine, wide_node
from cnn_lab.study.spec import Study, Variant
from cnn_lab.study.summary import BEST_CONFUSION

S = nodes.STUDY
STUDY = Study(S, TransferParams, nodes.variants, nodes.check_config)
SHARED = ("source_weights", "target_trainval", "config")
CLAIM_TABLES = {"summary": ClaimSource("summary", nodes.TRANSFER_KEYS, "{approach}")}


def _node(func: Any, inputs: list[str], outputs: list[str], name: str, tag: str) -> Node:
    """A study-level node: short dataset names, named ``transfer.<name>``."""
    out = names(S, outputs)
    one = out[0] if len(out) == 1 else out
    return node(func, names(S, inputs), one, name=name, namespace=S, tags=[tag])


def untuned(variants: list[Variant]) -> list[Variant]:
    """The first seed's fine-tuning presets and optimizer runs: the search starts from
    the best of them, the target's dataset analysis maps the best preset."""
    return [v for v in variants if v.seed == variants[0].seed and v.group != "search"]


def extra(variants: list[Variant]) -> Pipeline:
    """The splits, the source network, the feature baselines, the search, the one
    evaluation on the test set and the best fine-tuning run's confusion matrix."""
    data = ["source_data", "target_data", "config"]
    splits = ["source_split", "target_split", "target_trainval", "target_test"]
    baselines = ["baselines", "baseline_results"]
    scored = ["target_test", "target_trainval", "source_weights", *baselines, "config"]
    paired = [v.dataset(d) for v in variants for d in ("result", "weights")]
    return Pipeline(
        [
            _node(nodes.split_data, data, splits, "split_data", "data"),
            _node(
                nodes.train_source,
                ["source_data", "source_split", "config"],
                ["source_weights", "source_result"],
                "train_source",
                "training",
            ),
            _node(
                nodes.extract_features, list(SHARED), ["features"], "extract_features", "baselines"
            ),
            _node(
                nodes.fit_baselines, ["features", "config"], baselines, "fit_baselines", "baselines"
            ),
            search(variants),
            wide_node(
                nodes.evaluate_on_test,
                [*names(S, scored), *paired],
                names(S, ["summary", "test_predictions"]),
                name="evaluate_on_test",
                namespace=S,
                tags=["report"],
            ),
            _node(
                nodes.best_confusion,
                ["test_predictions"],
                [f"figures.{BEST_CONFUSION}"],
                "best_confusion",
                "report",
            ),
            claims_pipeline(S, CLAIM_TABLES, "target_data"),
        ]
    )


def search(variants: list[Variant]) -> Node:
    """The search, started from the first seed's best untuned run. In the namespace every
    variant's is under (named transfer.search all the same): a node outside it between
    the untuned variants and the tuned ones would interrupt it."""
    outputs = ["search.trials", "search.best", *(f"figures.{f}" for f in SEARCH_FIGURES)]
    return node(
        nodes.search,
        [*names(S, SHARED), *(v.dataset("result") for v in untuned(variants))],
        names(S, outputs),
        name="search",
        namespace=S,
        tags=["search", "training"],
    )


def analysis(variants: list[Variant]) -> Pipeline:
    """Both tasks' dataset analyses: the source network's features beside the source
    images, the best fine-tuning preset's (of the first seed) beside the target's."""
    presets = [v for v in untuned(variants) if v.group == "finetune"]
    trained = [v.dataset(d) for v in presets for d in ("result", "weights")]
    source = [f"{S}.config", f"{S}.source_weights"]
    picks = {"source": (nodes.source_analysis_model, source)}
    picks["target"] = (nodes.target_analysis_model, [f"{S}.config", *trained])
    return combine(
        model_analysis(
            S, pick, inputs, part=part, dataset=f"{S}.{part}_data", split=f"{S}.{part}_split"
        )
        for part, (pick, inputs) in picks.items()
    )


def tuned_inputs(variant: Variant) -> tuple[str, ...]:
    """The tuned model retrains the search's best configuration."""
    return ("search.best",) if variant.group == "search" else ()


FRAME = Frame(
    prepare=nodes.prepare_data,
    prepare_outputs=("source_data", "target_data"),
    split=None,
    train=nodes.finetune,
    train_inputs=SHARED,
    variant_inputs=tuned_inputs,
    summarise=nodes.summarise,
    summary_outputs=("history",),
    plot=nodes.plot,
    figures=STUDY_FIGURES,
    report=nodes.write_report,
    report_inputs=report_inputs(
        S,
        "source_data",
        "source_split",
        "source_result",
        "search.trials",
        "analysis.source.section",
        *(f"figures.{f}" for f in SEARCH_FIGURES),
        part="target",
    ),
    analysis=analysis,
    extra=extra,
)


create_pipeline = declare(STUDY, FRAME)
