"""The artworks study as a Kedro pipeline: data preparation once, then one namespaced
modular pipeline per variant (kedro-viz folds each into a box), then the comparison, the
dataset analysis and the report. With ``seeds`` every variant trains once per seed
(``artworks.scratch_s1``); the images, the split and the normalisation stay on ``seed``."""

from __future__ import annotations

from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node, pipeline

from cnn_lab.pipelines.artworks import nodes
from cnn_lab.pipelines.artworks.nodes import STUDY
from cnn_lab.pipelines.artworks.variants import VARIANTS
from cnn_lab.runtime.hooks import run_parameters
from cnn_lab.study.params import as_list
from cnn_lab.study.reporting import analysis_pipeline
from cnn_lab.study.shared_nodes import combine, grid_seeds, seed_configs, seed_suffix, wide_node


def variant_names(params: dict[str, Any]) -> list[str]:
    """Variants to run; unknown names are skipped here and reported by the validation
    node, which runs before anything else."""
    names = as_list(params.get("run"))
    if not isinstance(names, list):
        return []
    return list(dict.fromkeys(str(n) for n in names if str(n) in VARIANTS))


SHARED = ("images", "decoded", "split", "normalisation", "index_report", "config")


def _variant_pipeline(variant: str, seed: int | None = None) -> Pipeline:
    train = update_wrapper(partial(nodes.train_variant, variant=variant), nodes.train_variant)
    template = pipeline(
        [
            node(
                train,
                inputs=list(SHARED),
                outputs=[
                    "result",
                    "weights",
                    "figures.confusion_matrix",
                    "figures.misclassified",
                ],
                name="train",
                tags=["training"],
            )
        ]
    )
    inputs = {name: f"{STUDY}.{name}" for name in SHARED}
    inputs["config"] = f"{STUDY}.config{seed_suffix(seed)}"
    return pipeline(template, namespace=f"{STUDY}.{variant}{seed_suffix(seed)}", inputs=inputs)


def create_pipeline(**kwargs: Any) -> Pipeline:
    params = run_parameters().get(STUDY, {}) or {}
    variants, seeds = variant_names(params), grid_seeds(params)
    s = f"{STUDY}."
    prepare = pipeline(
        [
            node(nodes.validate_config, f"params:{STUDY}", s + "config", name=s + "validate"),
            node(
                nodes.index_images,
                s + "config",
                [s + "index", s + "index_report"],
                name=s + "index_images",
            ),
            node(
                nodes.decode_images,
                [s + "index", s + "config"],
                [s + "images", s + "decoded"],
                name=s + "decode_images",
            ),
            node(
                nodes.split_images,
                [s + "images", s + "index_report", s + "config"],
                s + "split",
                name=s + "split_images",
            ),
            node(
                nodes.normalisation_stats,
                [s + "images", s + "decoded", s + "split", s + "config"],
                s + "normalisation",
                name=s + "normalisation",
            ),
            node(
                nodes.class_counts_figure,
                [s + "images", s + "split"],
                s + "figures.class_counts",
                name=s + "plot_class_counts",
            ),
        ],
        tags=["data"],
    )
    trained = [seed_configs(STUDY, seeds)]
    trained += [_variant_pipeline(v, seed) for seed in seeds for v in variants]
    report = pipeline(
        [
            wide_node(
                nodes.summarise,
                [f"{s}{v}{seed_suffix(seed)}.result" for seed in seeds for v in variants],
                [s + "summary", s + "per_class_report", s + "figures.variant_comparison"],
                name=s + "summarise",
            )
        ],
        tags=["report"],
    )
    return combine(prepare, trained, report, _results(variants, seeds[0]))


def _results(variants: list[str], first: int | None) -> Pipeline:
    """The shared dataset analysis (through a view of the decoded-image store, with the
    best variant's features beside the raw pixels) and the report that ends the run; both
    take the variants of the ``first`` seed (its figures are the ones the report shows)."""
    s = f"{STUDY}."
    sfx = seed_suffix(first)
    data = [s + "images", s + "decoded", s + "split", s + "index_report", s + "config"]
    views = [node(nodes.analysis_data, data, s + "analysis_data", name=s + "analysis_data")]
    if variants:
        trained = [f"{s}{v}{sfx}.{d}" for v in variants for d in ("result", "weights")]
        views.append(
            wide_node(
                nodes.analysis_model,
                [s + "config", s + "index_report", s + "normalisation", *trained],
                s + "analysis_model",
                name=s + "analysis_model",
            )
        )
    analysis = combine(
        pipeline(views, tags=["analysis"]),
        analysis_pipeline(
            STUDY, s + "analysis_model" if variants else None, dataset=s + "analysis_data"
        ),
    )
    report = wide_node(
        nodes.write_report,
        [
            f"params:{STUDY}",
            s + "config",
            s + "images",
            s + "split",
            s + "index_report",
            s + "decoded",
            s + "summary",
            s + "per_class_report",
            s + "analysis.section",
            s + "figures.class_counts",
            s + "figures.variant_comparison",
            *(f"{s}{v}{sfx}.figures.{f}" for v in variants for f in nodes.VARIANT_FIGURES),
        ],
        [s + "report.html", s + "report.md"],
        name=s + "write_report",
    )
    return combine(analysis, pipeline([report], tags=["report"]))
