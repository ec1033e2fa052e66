"""The initialisation study as a Kedro pipeline.

One shared initial draw per network; one namespaced modular pipeline per (network, scheme)
run (``init_study.net_a1.hf`` ...) that first saves the run's initial network and then
trains it; a check node compares every initial tensor the runs must share; report nodes
build the tables, figures, dataset analysis and the report. With ``seeds`` every run
repeats once per seed (``init_study.net_a1.hf_s1``), each seed from its own shared draw.
"""

from __future__ import annotations

from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node, pipeline

from cnn_lab.pipelines.init_study import nodes
from cnn_lab.pipelines.init_study.nodes import FIGURES, KERNEL_SCHEMES, NETWORKS, RUNS, STUDY
from cnn_lab.runtime.hooks import run_parameters
from cnn_lab.study.reporting import analysis_pipeline
from cnn_lab.study.shared_nodes import (
    combine,
    data_preparation,
    grid_seeds,
    seed_config,
    seed_suffix,
    wide_node,
)


def _namespace(network: str, scheme: str, seed: int | None = None) -> str:
    return f"{STUDY}.{network}.{scheme.lower()}{seed_suffix(seed)}"


def _bound(func: Any, **kwargs: Any) -> Any:
    return update_wrapper(partial(func, **kwargs), func)


def _config(seed: int | None) -> str:
    return f"{STUDY}.config{seed_suffix(seed)}"


def _shared_init(network: str, seed: int | None) -> str:
    return f"{STUDY}.{network}.shared_init{seed_suffix(seed)}"


def _run_pipeline(network: str, scheme: str, seed: int | None = None) -> Pipeline:
    template = pipeline(
        [
            node(
                _bound(nodes.initialise_run, network=network, scheme=scheme),
                inputs=["shared_init", "dataset"],
                outputs="initial_weights",
                name="initialise",
                tags=["initialisation"],
            ),
            node(
                _bound(nodes.train_run, network=network, scheme=scheme),
                inputs=["dataset", "split", "config", "initial_weights"],
                outputs=["result", "weights"],
                name="train",
                tags=["training"],
            ),
        ]
    )
    return pipeline(
        template,
        namespace=_namespace(network, scheme, seed),
        inputs={
            "dataset": f"{STUDY}.dataset",
            "split": f"{STUDY}.split",
            "config": _config(seed),
            "shared_init": _shared_init(network, seed),
        },
    )


def _initial_networks(seed: int | None) -> Pipeline:
    """The shared draws of one training seed; a repeated seed first gets its own config."""
    nodes_ = []
    if seed is not None:
        nodes_.append(
            node(
                _bound(seed_config, seed=seed),
                f"{STUDY}.config",
                _config(seed),
                name=f"{STUDY}.seed_config{seed_suffix(seed)}",
            )
        )
    nodes_.append(
        node(
            nodes.shared_initial_networks,
            [f"{STUDY}.dataset", _config(seed)],
            [_shared_init(network, seed) for network in NETWORKS],
            name=f"{STUDY}.shared_initial_networks{seed_suffix(seed)}",
        )
    )
    return pipeline(nodes_, tags=["initialisation"])


def _analysis(seed: int | None) -> Pipeline:
    """The shared dataset analysis, with the default-init NetA1 of the first seed mapped
    beside the raw pixels."""
    pick = pipeline(
        [
            node(
                nodes.analysis_model,
                [f"{STUDY}.dataset", f"{_namespace(*nodes.ANALYSIS_RUN, seed)}.weights"],
                f"{STUDY}.analysis_model",
                name=f"{STUDY}.analysis_model",
            )
        ],
        tags=["analysis"],
    )
    return combine(pick, analysis_pipeline(STUDY, model=f"{STUDY}.analysis_model"))


def create_pipeline(**kwargs: Any) -> Pipeline:
    seeds = grid_seeds(run_parameters().get(STUDY, {}))
    prepare = data_preparation(STUDY, nodes.validate_config, nodes.prepare_dataset)
    shared = [_initial_networks(seed) for seed in seeds]
    runs = [_run_pipeline(*run, seed) for seed in seeds for run in RUNS]
    kernel_inputs = [
        f"{_namespace(n, s, seeds[0])}.{dataset}"
        for n, s in RUNS
        if s in KERNEL_SCHEMES
        for dataset in ("initial_weights", "weights")
    ]
    every_run = [(run, seed) for seed in seeds for run in RUNS]
    report = pipeline(
        [
            wide_node(
                nodes.compare_initial_states_by_seed,
                [
                    f"{STUDY}.config",
                    *(f"{_namespace(*run, seed)}.initial_weights" for run, seed in every_run),
                ],
                f"{STUDY}.initial_differences",
                name=f"{STUDY}.compare_initial_states",
                tags=["initialisation"],
            ),
            wide_node(
                nodes.summarise,
                [
                    f"{STUDY}.config",
                    *(f"{_namespace(*run, seed)}.result" for run, seed in every_run),
                ],
                [f"{STUDY}.summary", f"{STUDY}.history"],
                name=f"{STUDY}.summarise",
            ),
            node(
                nodes.plot_study,
                [f"{STUDY}.summary", f"{STUDY}.history"],
                [f"{STUDY}.figures.{name}" for name in FIGURES],
                name=f"{STUDY}.plot",
            ),
            node(
                nodes.plot_kernels,
                kernel_inputs,
                f"{STUDY}.figures.kernels",
                name=f"{STUDY}.plot_kernels",
            ),
            node(
                nodes.write_report,
                [
                    f"params:{STUDY}",
                    f"{STUDY}.config",
                    f"{STUDY}.dataset",
                    f"{STUDY}.split",
                    f"{STUDY}.summary",
                    f"{STUDY}.initial_differences",
                    f"{STUDY}.analysis.section",
                    *(f"{STUDY}.figures.{name}" for name in (*FIGURES, "kernels")),
                ],
                [f"{STUDY}.report.html", f"{STUDY}.report.md"],
                name=f"{STUDY}.write_report",
            ),
        ],
        tags=["report"],
    )
    return combine(prepare, shared, runs, _analysis(seeds[0]), report)
