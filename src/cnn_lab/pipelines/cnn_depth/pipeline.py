"""The depth study as a Kedro pipeline: one namespaced training node per variant,
generated from the parameter grid, so kedro-viz folds variants into groups and each
variant can run as its own process or orchestrator task."""

from __future__ import annotations

from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Node, Pipeline, node, pipeline

from cnn_lab.pipelines.cnn_depth import nodes
from cnn_lab.pipelines.cnn_depth.nodes import STUDY, variant_name
from cnn_lab.runtime.hooks import run_parameters
from cnn_lab.study.params import as_list
from cnn_lab.study.reporting import analysis_pipeline
from cnn_lab.study.shared_nodes import combine, data_preparation, grid_seeds, wide_node


def variant_grid(params: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(group, family, depth) triples; malformed entries are skipped here and reported
    by the validation node, which runs before anything else."""
    grid = []
    groups = params.get("groups")
    for group, spec in groups.items() if isinstance(groups, dict) else []:
        spec = spec if isinstance(spec, dict) else {}
        if str(spec.get("enabled", True)).lower() in ("false", "0", "no", "off"):
            continue  # switched off (e.g. the MLP group in the CIFAR-10 envs)
        families, depths = as_list(spec.get("families")), as_list(spec.get("depths"))
        if not isinstance(families, list) or not isinstance(depths, list):
            continue
        grid += [
            (str(group), str(f), int(d))
            for f in families
            for d in depths
            if isinstance(d, int) and not isinstance(d, bool)
        ]
    return list(dict.fromkeys(grid))


def _variant_node(group: str, family: str, depth: int, seed: int | None) -> Node:
    """The variant's training node in its namespace: what ``pipeline([train],
    namespace=..., inputs=...)`` makes of it, built directly (that builds and validates
    three pipelines per variant: a third of the start-up of a grid of thousands)."""
    train = update_wrapper(
        partial(nodes.train_variant, group=group, family=family, depth=depth, seed=seed),
        nodes.train_variant,
    )
    namespace = f"{STUDY}.{group}.{variant_name(family, depth, seed)}"
    return node(
        train,
        inputs=[f"{STUDY}.dataset", f"{STUDY}.split", f"{STUDY}.config"],
        outputs=[f"{namespace}.result", f"{namespace}.weights"],
        name="train",
        tags=["training"],
        namespace=namespace,
    )


def _analysis(grid: list[tuple[str, str, int]], seed: int | None) -> Pipeline:
    """The shared dataset analysis, with the deepest variant of the first group (its last
    family: the residual twin in the default grid) mapped beside the raw pixels."""
    group = grid[0][0]
    family, depth = max(((f, d) for g, f, d in grid if g == group), key=lambda fd: fd[1])
    model = update_wrapper(
        partial(nodes.analysis_model, group=group, family=family, depth=depth),
        nodes.analysis_model,
    )
    name = variant_name(family, depth, seed)
    pick = pipeline(
        [
            node(
                model,
                [f"{STUDY}.dataset", f"{STUDY}.config", f"{STUDY}.{group}.{name}.weights"],
                f"{STUDY}.analysis_model",
                name=f"{STUDY}.analysis_model",
            )
        ],
        tags=["analysis"],
    )
    return combine(pick, analysis_pipeline(STUDY, model=f"{STUDY}.analysis_model"))


def create_pipeline(**kwargs: Any) -> Pipeline:
    params = run_parameters().get(STUDY, {})
    seeds = grid_seeds(params)
    grid = variant_grid(params)
    prepare = data_preparation(STUDY, nodes.validate_config, nodes.prepare_dataset)
    variants = [_variant_node(*v, seed) for v in grid for seed in seeds]
    results = [f"{STUDY}.{g}.{variant_name(f, d, s)}.result" for g, f, d in grid for s in seeds]
    report = pipeline(
        [
            wide_node(
                nodes.summarise,
                results,
                [f"{STUDY}.summary", f"{STUDY}.history"],
                name=f"{STUDY}.summarise",
            ),
            node(
                nodes.plot_study,
                [f"{STUDY}.summary", f"{STUDY}.history"],
                [f"{STUDY}.figures.{n}" for n in nodes.FIGURES],
                name=f"{STUDY}.plot",
            ),
            node(
                nodes.write_report,
                [
                    f"params:{STUDY}",
                    f"{STUDY}.config",
                    f"{STUDY}.dataset",
                    f"{STUDY}.split",
                    f"{STUDY}.summary",
                    f"{STUDY}.history",
                    f"{STUDY}.analysis.section",
                    *(f"{STUDY}.figures.{n}" for n in nodes.FIGURES),
                ],
                [f"{STUDY}.report.html", f"{STUDY}.report.md"],
                name=f"{STUDY}.write_report",
            ),
        ],
        tags=["report"],
    )
    analysis = _analysis(grid, seeds[0]) if grid else Pipeline([])
    return combine(prepare, variants, analysis, report)
