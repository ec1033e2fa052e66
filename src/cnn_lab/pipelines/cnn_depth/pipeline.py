"""The depth study as a Kedro pipeline: one namespaced modular pipeline per variant,
generated from the parameter grid, so kedro-viz folds variants into groups and each
variant can run as its own process or orchestrator task."""

from __future__ import annotations

from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node, pipeline

from cnn_lab.hooks import run_parameters
from cnn_lab.params import as_list
from cnn_lab.pipelines.cnn_depth import nodes
from cnn_lab.pipelines.cnn_depth.nodes import STUDY, variant_name
from cnn_lab.pipelines.shared_nodes import split_dataset


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


def _variant_pipeline(group: str, family: str, depth: int) -> Pipeline:
    train = update_wrapper(
        partial(nodes.train_variant, group=group, family=family, depth=depth), nodes.train_variant
    )
    template = pipeline(
        [
            node(
                train,
                inputs=["dataset", "split", "config"],
                outputs=["result", "weights"],
                name="train",
                tags=["training"],
            ),
        ]
    )
    return pipeline(
        template,
        namespace=f"{STUDY}.{group}.{variant_name(family, depth)}",
        inputs={
            "dataset": f"{STUDY}.dataset",
            "split": f"{STUDY}.split",
            "config": f"{STUDY}.config",
        },
    )


def create_pipeline(**kwargs: Any) -> Pipeline:
    grid = variant_grid(run_parameters().get(STUDY, {}))
    prepare = pipeline(
        [
            node(
                nodes.validate_config,
                f"params:{STUDY}",
                f"{STUDY}.config",
                name=f"{STUDY}.validate_parameters",
            ),
            node(
                nodes.prepare_dataset,
                f"{STUDY}.config",
                f"{STUDY}.dataset",
                name=f"{STUDY}.prepare_dataset",
            ),
            node(
                split_dataset,
                [f"{STUDY}.dataset", f"{STUDY}.config"],
                f"{STUDY}.split",
                name=f"{STUDY}.split_dataset",
            ),
        ],
        tags=["data"],
    )
    variants = sum((_variant_pipeline(*v) for v in grid), Pipeline([]))
    results = [f"{STUDY}.{g}.{variant_name(f, d)}.result" for g, f, d in grid]
    report = pipeline(
        [
            node(
                nodes.summarise,
                results,
                [f"{STUDY}.summary", f"{STUDY}.history"],
                name=f"{STUDY}.summarise",
            ),
            node(
                nodes.plot_study,
                [f"{STUDY}.summary", f"{STUDY}.history"],
                [
                    f"{STUDY}.figures.{n}"
                    for n in (
                        "loss_curves",
                        "accuracy_curves",
                        "gradient_norms",
                        "accuracy_vs_depth",
                        "training_time",
                    )
                ],
                name=f"{STUDY}.plot",
            ),
        ],
        tags=["report"],
    )
    return prepare + variants + report
