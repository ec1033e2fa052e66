"""benchmarks/resnet20_epoch.py times the recipe ``--env=paper_he`` trains, not a copy
that drifted: it reads the YAML without Kedro (a lent GPU machine has no Kedro)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util

from kedro.config import OmegaConfigLoader

from cnn_lab.pipelines.cnn_depth.nodes import group_recipe
from cnn_lab.pipelines.cnn_depth.pipeline import STUDY
from cnn_lab.settings import CONFIG_LOADER_ARGS
from cnn_lab.training import PerformanceOptions
from tests.conftest import PROJECT_ROOT


def test_resnet20_benchmark_times_the_study_recipe() -> None:
    path = PROJECT_ROOT / "benchmarks" / "resnet20_epoch.py"
    spec = importlib.util.spec_from_file_location("resnet20_epoch", path)
    assert spec is not None and spec.loader is not None
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    args = argparse.Namespace(
        precision="auto", channels_last="auto", compile="off", device="auto", epochs=3
    )
    recipe, augment = benchmark.paper_recipe(args)

    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"), env="paper_he", **CONFIG_LOADER_ARGS
    )
    config = STUDY.validate(loader["parameters"]["cnn_depth"])
    study = group_recipe(config, "cifar", seed=0)
    assert recipe == dataclasses.replace(study, epochs=3, performance=PerformanceOptions())
    assert study.performance == PerformanceOptions()  # the study's defaults are the benchmark's
    assert augment == config["data"]["augment"] == {"crop_padding": 4, "flip": True}
    assert (recipe.optimizer, recipe.lr, recipe.batch_size, recipe.max_steps) == (
        "sgd",
        0.1,
        128,
        64000,
    )
