"""The initialisation study as a Kedro pipeline.

One shared initial draw per network; one namespaced modular pipeline per (network, scheme)
run (``init_study.net_a1.hf`` ...) that first saves the run's initial network and then
trains it; a check node compares every initial tensor the runs must share; report nodes
build the tables and figures.
"""

from __future__ import annotations

from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node, pipeline

from cnn_lab.pipelines.init_study import nodes
from cnn_lab.pipelines.init_study.nodes import FIGURES, KERNEL_SCHEMES, NETWORKS, RUNS, STUDY
from cnn_lab.pipelines.shared_nodes import data_preparation


def _namespace(network: str, scheme: str) -> str:
    return f"{STUDY}.{network}.{scheme.lower()}"


def _bound(func: Any, **kwargs: Any) -> Any:
    return update_wrapper(partial(func, **kwargs), func)


def _run_pipeline(network: str, scheme: str) -> Pipeline:
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
        namespace=_namespace(network, scheme),
        inputs={
            "dataset": f"{STUDY}.dataset",
            "split": f"{STUDY}.split",
            "config": f"{STUDY}.config",
            "shared_init": f"{STUDY}.{network}.shared_init",
        },
    )


def create_pipeline(**kwargs: Any) -> Pipeline:
    prepare = data_preparation(STUDY, nodes.validate_config, nodes.prepare_dataset)
    shared = pipeline(
        [
            node(
                nodes.shared_initial_networks,
                [f"{STUDY}.dataset", f"{STUDY}.config"],
                [f"{STUDY}.{network}.shared_init" for network in NETWORKS],
                name=f"{STUDY}.shared_initial_networks",
            ),
        ],
        tags=["initialisation"],
    )
    runs = sum((_run_pipeline(*run) for run in RUNS), Pipeline([]))
    kernel_inputs = [
        f"{_namespace(n, s)}.{dataset}"
        for n, s in RUNS
        if s in KERNEL_SCHEMES
        for dataset in ("initial_weights", "weights")
    ]
    report = pipeline(
        [
            node(
                nodes.compare_initial_states,
                [f"{_namespace(*run)}.initial_weights" for run in RUNS],
                f"{STUDY}.initial_differences",
                name=f"{STUDY}.compare_initial_states",
                tags=["initialisation"],
            ),
            node(
                nodes.summarise,
                [f"{_namespace(*run)}.result" for run in RUNS],
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
        ],
        tags=["report"],
    )
    return prepare + shared + runs + report
