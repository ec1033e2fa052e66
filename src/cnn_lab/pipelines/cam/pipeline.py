"""The CAM study as a Kedro pipeline: data preparation, one namespaced modular pipeline
per model (train, then explain), the localisation table and figures, the dataset analysis
and the report. With ``seeds`` every model repeats once per seed (``cam.small_cnn_s1``)."""

from __future__ import annotations

from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node, pipeline

from cnn_lab.pipelines.cam import nodes
from cnn_lab.pipelines.cam.nodes import STUDY
from cnn_lab.runtime.hooks import run_parameters
from cnn_lab.study.reporting import analysis_pipeline
from cnn_lab.study.shared_nodes import (
    combine,
    grid_seeds,
    seed_configs,
    seed_suffix,
    split_dataset,
    wide_node,
)

SHARED = ["dataset", "split", "boxes", "examples", "config"]


def model_names(params: dict[str, Any]) -> list[str]:
    """Model keys of ``cam.models``; malformed ones are left to the validation node."""
    models = params.get("models")
    return [str(n) for n in models if str(n).isidentifier()] if isinstance(models, dict) else []


def _bind(function: Any, **kwargs: Any) -> Any:
    return update_wrapper(partial(function, **kwargs), function)


def _pretrains(params: dict[str, Any], name: str) -> bool:
    return nodes.uses_pretrain(params["models"][name])


def _pretrain_pipeline(name: str) -> Pipeline:
    """Model ``name`` trained on the source task, once for all seeds (as ImageNet
    weights are the same for every seed)."""
    return pipeline(
        [
            node(
                _bind(nodes.pretrain_variant, name=name),
                inputs="config",
                outputs=["pretrained_weights", "pretrain_result"],
                name="pretrain",
                tags=["training"],
            )
        ],
        namespace=f"{STUDY}.{name}",
        inputs={"config": f"{STUDY}.config"},
    )


def _model_pipeline(name: str, seed: int | None = None, pretrained: bool = False) -> Pipeline:
    source = ["pretrained", "pretraining"] if pretrained else []
    template = pipeline(
        [
            node(
                _bind(nodes.train_variant, name=name),
                inputs=["dataset", "split", "config", *source],
                outputs=["result", "weights", "model"],
                name="train",
                tags=["training"],
            ),
            node(
                _bind(nodes.explain_variant, name=name),
                inputs=["model", "result", "dataset", "split", "boxes", "examples", "config"],
                outputs="explained",
                name="explain",
                tags=["cam"],
            ),
        ]
    )
    inputs = {k: f"{STUDY}.{k}" for k in SHARED}
    inputs["config"] = f"{STUDY}.config{seed_suffix(seed)}"
    if pretrained:
        inputs["pretrained"] = f"{STUDY}.{name}.pretrained_weights"
        inputs["pretraining"] = f"{STUDY}.{name}.pretrain_result"
    return pipeline(template, namespace=f"{STUDY}.{name}{seed_suffix(seed)}", inputs=inputs)


def create_pipeline(**kwargs: Any) -> Pipeline:
    params = run_parameters().get(STUDY, {})
    names, seeds = model_names(params), grid_seeds(params)
    s = STUDY
    prepare = pipeline(
        [
            node(
                nodes.validate_config, f"params:{s}", f"{s}.config", name=f"{s}.validate_parameters"
            ),
            node(
                nodes.prepare_dataset,
                f"{s}.config",
                [f"{s}.dataset", f"{s}.boxes"],
                name=f"{s}.prepare_dataset",
            ),
            node(
                split_dataset,
                [f"{s}.dataset", f"{s}.config"],
                f"{s}.split",
                name=f"{s}.split_dataset",
            ),
            node(
                nodes.choose_examples,
                [f"{s}.dataset", f"{s}.split", f"{s}.config"],
                f"{s}.examples",
                name=f"{s}.choose_examples",
            ),
        ],
        tags=["data"],
    )
    pretrained = {n: _pretrains(params, n) for n in names}
    models = [_pretrain_pipeline(n) for n in names if pretrained[n]]
    models += [_model_pipeline(n, seed, pretrained[n]) for seed in seeds for n in names]
    every = [f"{s}.{n}{seed_suffix(seed)}" for seed in seeds for n in names]
    first = [f"{s}.{n}{seed_suffix(seeds[0])}" for n in names]  # drawn in the figures
    data = [f"{s}.dataset", f"{s}.split", f"{s}.boxes"]
    report = pipeline(
        [
            node(
                nodes.chance_levels,
                [*data, f"{s}.config"],
                f"{s}.chance",
                name=f"{s}.chance_levels",
            ),
            wide_node(
                nodes.localisation_by_seed,
                [f"{s}.config", f"{s}.chance", *(f"{m}.explained" for m in every)],
                f"{s}.localisation",
                name=f"{s}.localisation_table",
            ),
            node(
                nodes.render,
                [*data, f"{s}.examples", f"{s}.config", *(f"{m}.explained" for m in first)],
                [f"{s}.figures.cam_grid", f"{s}.figures.cam_top_k"],
                name=f"{s}.render",
            ),
        ],
        tags=["report"],
    )
    return combine(prepare, seed_configs(STUDY, seeds), models, report, _results(names, seeds))


def _results(names: list[str], seeds: list[int | None]) -> Pipeline:
    """The dataset analysis (the first model's features, first seed, beside the raw
    pixels) and the report that ends the run."""
    s = STUDY
    analysis = analysis_pipeline(s, model=f"{s}.analysis_model" if names else None)
    if names:
        model = f"{s}.{names[0]}{seed_suffix(seeds[0])}"
        pick = node(
            _bind(nodes.analysis_model, name=names[0]),
            [f"{s}.dataset", f"{s}.config", f"{model}.result", f"{model}.weights"],
            f"{s}.analysis_model",
            name=f"{s}.analysis_model",
        )
        analysis = combine(pipeline([pick], tags=["analysis"]), analysis)
    report = wide_node(
        nodes.write_report,
        [
            f"params:{s}",
            f"{s}.config",
            f"{s}.dataset",
            f"{s}.split",
            f"{s}.localisation",
            f"{s}.analysis.section",
            f"{s}.figures.cam_grid",
            f"{s}.figures.cam_top_k",
            *(f"{s}.{n}{seed_suffix(seed)}.result" for seed in seeds for n in names),
        ],
        [f"{s}.report.html", f"{s}.report.md"],
        name=f"{s}.write_report",
    )
    return combine(analysis, pipeline([report], tags=["report"]))
