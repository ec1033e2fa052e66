"""The artworks study, declared: the images are indexed, decoded into a cache, split and
normalised once; one namespaced training node per variant and seed (``artworks.scratch``,
or ``artworks.scratch_s1`` with ``seeds``); then the comparison, the dataset analysis and
the report. The images, the split and the normalisation stay on ``seed``."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from cnn_lab.pipelines.artworks import nodes
from cnn_lab.pipelines.artworks.schema import ArtworksParams
from cnn_lab.study.frame import Frame, declare
from cnn_lab.study.reporting import ClaimSource, claims_pipeline, confusion_pipeline, model_analysis
from cnn_lab.study.spec import Study, Variant

STUDY = Study(nodes.STUDY, ArtworksParams, nodes.variants)
s = f"{nodes.STUDY}."  # the study's dataset and node names: s + "split"
# The table the lab's claims query: a variant over seeds.
CLAIM_TABLES = {"summary": ClaimSource("summary", ("variant",))}


def data(variants: list[Variant]) -> Pipeline:
    """The images decoded into the cache, the split and the training-split normalisation."""
    steps = [
        node(
            nodes.decode_images,
            [s + "index", s + "config"],
            [s + "images", s + "decoded"],
            name="decode_images",
            namespace=nodes.STUDY,
        ),
        node(
            nodes.split_images,
            [s + "images", s + "index_report", s + "config"],
            s + "split",
            name="split_images",
            namespace=nodes.STUDY,
        ),
        node(
            nodes.normalisation_stats,
            [s + "images", s + "decoded", s + "split", s + "config"],
            s + "normalisation",
            name="normalisation",
            namespace=nodes.STUDY,
        ),
        node(
            nodes.class_counts_figure,
            [s + "images", s + "split"],
            s + "figures.class_counts",
            name="plot_class_counts",
            namespace=nodes.STUDY,
        ),
    ]
    return pipeline(steps, tags=["data"])


def extra(variants: list[Variant]) -> Pipeline:
    """The data steps, the lab's claims checked on the summary, and the best variant's
    confusion matrix."""
    claims = claims_pipeline(nodes.STUDY, CLAIM_TABLES)
    return data(variants) + claims + confusion_pipeline(nodes.STUDY, variants)


def first_seed(variants: list[Variant]) -> list[Variant]:
    """The variants of the first training seed: their figures are the ones the report shows
    and the best of them is mapped in the dataset analysis."""
    return [v for v in variants if v.seed == variants[0].seed]


def analysis(variants: list[Variant]) -> Pipeline:
    """The shared dataset analysis, through a view of the decoded-image store, with the
    best variant's features beside the raw pixels."""
    inputs = [s + "images", s + "decoded", s + "split", s + "index_report", s + "config"]
    trained = [v.dataset(d) for v in first_seed(variants) for d in ("result", "weights")]
    view = node(
        nodes.analysis_data,
        inputs,
        s + "analysis_data",
        name="analysis_data",
        namespace=nodes.STUDY,
    )
    picked = [s + "config", s + "index_report", s + "normalisation", *trained]
    return pipeline([view], tags=["analysis"]) + model_analysis(
        nodes.STUDY, nodes.analysis_model, picked, dataset=s + "analysis_data"
    )


DATA = ("config", "images", "split", "index_report", "decoded")
RESULTS = ("summary", "per_class_report", "analysis.section", "claims")
FIGURES = ("figures.class_counts", "figures.variant_comparison", "figures.confusion_matrix_best")


def report_inputs(variants: list[Variant]) -> list[str]:
    """What the report reads, then each variant's figures (of the first seed)."""
    figures = [
        v.dataset(f"figures.{f}") for v in first_seed(variants) for f in nodes.VARIANT_FIGURES
    ]
    return [f"params:{nodes.STUDY}", *(s + name for name in (*DATA, *RESULTS, *FIGURES)), *figures]


FRAME = Frame(
    prepare=nodes.index_images,
    prepare_outputs=("index", "index_report"),
    split=None,
    train=nodes.train_variant,
    train_inputs=("images", "decoded", "split", "normalisation", "index_report", "config"),
    train_outputs=("result", "weights", "figures.confusion_matrix", "figures.misclassified"),
    summarise=nodes.summarise,
    summary_outputs=("summary", "per_class_report", "figures.variant_comparison"),
    report=nodes.write_report,
    report_inputs=report_inputs,
    analysis=analysis,
    extra=extra,
)


create_pipeline = declare(STUDY, FRAME)
