"""The transfer study as a Kedro pipeline: data and source model first, then the feature
baselines, one namespaced modular pipeline per fine-tuning preset and per optimizer, the
search and the tuned model, a single node that touches the test set, then both tasks'
dataset analyses and the report. With ``seeds`` the fine-tuning presets, the optimizer
runs and the tuned model repeat once per seed (``transfer.finetune.head_s1``); the data,
the source network, the baselines and the search stay on ``seed``."""

from __future__ import annotations

from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node, pipeline

from cnn_lab.pipelines.transfer import nodes
from cnn_lab.pipelines.transfer.nodes import SEARCH_FIGURES, STUDY, STUDY_FIGURES
from cnn_lab.runtime.hooks import run_parameters
from cnn_lab.study.params import as_list
from cnn_lab.study.reporting import analysis_pipeline
from cnn_lab.study.shared_nodes import combine, grid_seeds, seed_configs, seed_suffix, wide_node

SHARED = {
    "source_weights": f"{STUDY}.source_weights",
    "target": f"{STUDY}.target_trainval",
    "config": f"{STUDY}.config",
}


def variant_grid(params: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(group, name, options) per fine-tuning variant. Malformed entries are skipped here
    and reported by the validation node, which runs before anything else."""
    grid: list[tuple[str, str, dict[str, Any]]] = []
    finetune = params.get("finetune") if isinstance(params.get("finetune"), dict) else {}
    presets = as_list(finetune.get("presets", ["head", "layer4", "layer3", "all"]))
    for preset in presets if isinstance(presets, list) else []:
        grid.append(("finetune", str(preset), {"preset": str(preset)}))
    grid_params = params.get("optimizers") if isinstance(params.get("optimizers"), dict) else {}
    names = as_list(grid_params.get("names", ["adam", "sgd", "adamw", "rmsprop"]))
    lrs = as_list(grid_params.get("lrs", [1e-3]))
    if isinstance(names, list) and isinstance(lrs, list):
        for name in names:
            for lr in lrs:
                try:
                    lr = float(lr)
                except (TypeError, ValueError):
                    continue
                options = {"optimizer": str(name), "lr": lr}
                grid.append(("optimizers", nodes.optimizer_variant(str(name), lr), options))
    return list({(g, n): (g, n, o) for g, n, o in grid}.values())


def _variant_pipeline(
    group: str, name: str, options: dict[str, Any], seed: int | None = None
) -> Pipeline:
    function = nodes.train_preset if group == "finetune" else nodes.train_optimizer
    train = update_wrapper(partial(function, **options), function)
    template = pipeline(
        [
            node(
                train,
                inputs=["source_weights", "target", "config"],
                outputs=["result", "weights"],
                name="train",
                tags=["training"],
            )
        ]
    )
    inputs = {**SHARED, "config": f"{STUDY}.config{seed_suffix(seed)}"}
    return pipeline(template, namespace=f"{STUDY}.{group}.{name}{seed_suffix(seed)}", inputs=inputs)


def _tuned(seed: int | None) -> Pipeline:
    """The search's best configuration retrained with one training seed."""
    sfx = seed_suffix(seed)
    return pipeline(
        [
            node(
                nodes.train_tuned,
                [
                    SHARED["source_weights"],
                    SHARED["target"],
                    f"{STUDY}.config{sfx}",
                    f"{STUDY}.search.best",
                ],
                [f"{STUDY}.search.tuned{sfx}.result", f"{STUDY}.search.tuned{sfx}.weights"],
                name=f"{STUDY}.train_tuned{sfx}",
            )
        ],
        tags=["search", "training"],
    )


def create_pipeline(**kwargs: Any) -> Pipeline:
    params = run_parameters().get(STUDY, {})
    grid, seeds = variant_grid(params), grid_seeds(params)
    prepare = pipeline(
        [
            node(
                nodes.validate_config,
                f"params:{STUDY}",
                f"{STUDY}.config",
                name=f"{STUDY}.validate_parameters",
            ),
            node(
                nodes.prepare_data,
                f"{STUDY}.config",
                [f"{STUDY}.source_data", f"{STUDY}.target_data"],
                name=f"{STUDY}.prepare_data",
            ),
            node(
                nodes.split_data,
                [f"{STUDY}.source_data", f"{STUDY}.target_data", f"{STUDY}.config"],
                [
                    f"{STUDY}.source_split",
                    f"{STUDY}.target_split",
                    f"{STUDY}.target_trainval",
                    f"{STUDY}.target_test",
                ],
                name=f"{STUDY}.split_data",
            ),
        ],
        tags=["data"],
    )
    source = pipeline(
        [
            node(
                nodes.train_source,
                [f"{STUDY}.source_data", f"{STUDY}.source_split", f"{STUDY}.config"],
                [f"{STUDY}.source_weights", f"{STUDY}.source_result"],
                name=f"{STUDY}.train_source",
            )
        ],
        tags=["training"],
    )
    baselines = pipeline(
        [
            node(
                nodes.extract_features,
                list(SHARED.values()),
                f"{STUDY}.features",
                name=f"{STUDY}.extract_features",
            ),
            node(
                nodes.fit_baselines,
                [f"{STUDY}.features", f"{STUDY}.config"],
                [f"{STUDY}.baselines", f"{STUDY}.baseline_results"],
                name=f"{STUDY}.fit_baselines",
            ),
        ],
        tags=["baselines"],
    )
    variants = [seed_configs(STUDY, seeds)]
    variants += [_variant_pipeline(*v, seed) for seed in seeds for v in grid]
    # The untuned runs of the first training seed: the search starts from the best of them.
    untuned = [f"{STUDY}.{g}.{n}{seed_suffix(seeds[0])}.result" for g, n, _ in grid]
    search = pipeline(
        [
            node(
                nodes.search,
                [*SHARED.values(), *untuned],
                [
                    f"{STUDY}.search.trials",
                    f"{STUDY}.search.best",
                    *(f"{STUDY}.figures.{name}" for name in SEARCH_FIGURES),
                ],
                name=f"{STUDY}.search",
            ),
        ],
        tags=["search", "training"],
    )
    tuned = [_tuned(seed) for seed in seeds]
    trained = [
        f"{STUDY}.{prefix}{seed_suffix(seed)}"
        for seed in seeds
        for prefix in [*(f"{g}.{n}" for g, n, _ in grid), "search.tuned"]
    ]
    results = [f"{prefix}.result" for prefix in trained]
    paired = [name for prefix in trained for name in (f"{prefix}.result", f"{prefix}.weights")]
    report = pipeline(
        [
            wide_node(
                nodes.evaluate_on_test,
                [
                    f"{STUDY}.target_test",
                    f"{STUDY}.target_trainval",
                    f"{STUDY}.source_weights",
                    f"{STUDY}.baselines",
                    f"{STUDY}.baseline_results",
                    f"{STUDY}.config",
                    *paired,
                ],
                f"{STUDY}.summary",
                name=f"{STUDY}.evaluate_on_test",
            ),
            wide_node(
                nodes.report,
                [f"{STUDY}.summary", *results],
                [f"{STUDY}.history", *(f"{STUDY}.figures.{name}" for name in STUDY_FIGURES)],
                name=f"{STUDY}.report",
            ),
        ],
        tags=["report"],
    )
    return combine(
        prepare, source, baselines, variants, search, tuned, report, _results(grid, seeds)
    )


def _results(grid: list[tuple[str, str, dict[str, Any]]], seeds: list[int | None]) -> Pipeline:
    """Both tasks' dataset analyses (the source network's features beside the source
    images, the best fine-tuning preset's of the first seed beside the target's) and the
    report."""
    s = STUDY
    presets = [f"{s}.{g}.{n}{seed_suffix(seeds[0])}" for g, n, _ in grid if g == "finetune"]
    pick = [
        node(
            nodes.source_analysis_model,
            [f"{s}.config", f"{s}.source_weights"],
            f"{s}.source_analysis_model",
            name=f"{s}.source_analysis_model",
        )
    ]
    if presets:
        pick.append(
            wide_node(
                nodes.target_analysis_model,
                [f"{s}.config", *(f"{p}.{d}" for p in presets for d in ("result", "weights"))],
                f"{s}.target_analysis_model",
                name=f"{s}.target_analysis_model",
            )
        )
    analysis = [pipeline(pick, tags=["analysis"])]
    for part in ("source", "target"):
        model = f"{s}.{part}_analysis_model" if part == "source" or presets else None
        analysis.append(
            analysis_pipeline(
                s, model, dataset=f"{s}.{part}_data", split=f"{s}.{part}_split", part=part
            )
        )
    report = node(
        nodes.write_report,
        [
            f"params:{s}",
            f"{s}.config",
            f"{s}.source_data",
            f"{s}.source_split",
            f"{s}.target_data",
            f"{s}.target_split",
            f"{s}.summary",
            f"{s}.source_result",
            f"{s}.search.trials",
            f"{s}.analysis.source.section",
            f"{s}.analysis.target.section",
            *(f"{s}.figures.{name}" for name in (*STUDY_FIGURES, *SEARCH_FIGURES)),
        ],
        [f"{s}.report.html", f"{s}.report.md"],
        name=f"{s}.write_report",
    )
    return combine(analysis, pipeline([report], tags=["report"]))
