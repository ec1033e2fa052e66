"""The artworks study's training job, built from its validated config without Kedro."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cnn_lab.models import count_parameters
from cnn_lab.pipelines.artworks import nodes
from cnn_lab.pipelines.artworks.pipeline import STUDY
from cnn_lab.study import store_jobs
from cnn_lab.training.loss import balanced_class_weights
from tests.pipelines.artworks.test_nodes import base_params


def _setup() -> tuple[dict, pd.DataFrame, dict, dict, dict]:
    params = base_params()
    params["model"]["arch"] = "resnet18"
    params["training"]["class_weights"] = True
    config = STUDY.validate(params)
    labels = [0] * 6 + [1] * 3 + [2] * 3
    images = pd.DataFrame(
        {"path": [f"a{i}.jpg" for i in range(12)], "label": labels, "cache_row": range(12)}
    )
    decoded = {"image_size": 32, "cache_file": None}
    split = {"train": list(range(0, 12, 2)), "val": [1, 5], "test": [3, 7, 9, 11]}
    normalisation = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    return config, images, decoded, split, normalisation


def test_recipe_takes_the_variants_own_lr_and_leaves_class_weights_to_the_loss() -> None:
    config, *_ = _setup()
    variant = next(v for v in nodes.variants(config) if v.name == "finetune")
    recipe = store_jobs.recipe(config, variant)
    assert recipe.lr == pytest.approx(config["variants"]["finetune"]["lr"])
    assert recipe.lr != config["variants"]["scratch"]["lr"]


def test_variant_job_weights_the_loss_by_the_training_split_and_records_the_variant() -> None:
    config, images, decoded, split, normalisation = _setup()
    variant = next(v for v in nodes.variants(config) if v.name == "scratch")
    report = {"class_names": ["a", "b", "c"]}
    job, _, store = store_jobs.variant_job(
        variant, config, images, decoded, split, normalisation, report
    )
    train_labels = np.asarray(images["label"])[split["train"]]
    expected = torch.as_tensor(balanced_class_weights(train_labels, 3), dtype=torch.float32)
    torch.testing.assert_close(job.loss.weight.float(), expected)
    assert job.params["variant"] == "scratch"
    assert job.params["image_size"] == 32
    assert job.params["seed"] == variant.seed
    assert job.params["lr"] == config["variants"]["scratch"]["lr"]
    model = job.build()
    assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    groups = list(job.parameter_groups(model))
    assert sum(p.numel() for p in groups[0]["params"]) == count_parameters(model)
    assert (store.size, len(store)) == (32, 12)
