"""The kit's fine-tuning helpers that transfer's nodes call: its variants and their
choices, the source and target networks, the bundle split and the batch-size check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnn_lab.data.sources import DatasetBundle, LabelledImages
from cnn_lab.data.splits import split_bundle
from cnn_lab.study.finetune import (
    TransferNetworks,
    finetune_choice,
    finetune_variants,
    searched_choice,
)
from cnn_lab.study.params import ParameterError, check_batch_sizes

CONFIG = {
    "seed": 0,
    "seeds": [0, 1],
    "finetune": {
        "presets": ["head", "all"],
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_size": 16,
        "dropout": 0.1,
    },
    "optimizers": {"names": ["sgd"], "lrs": [0.003], "preset": "layer4"},
    "search": {"preset": "layer3"},
}


def test_variants_are_listed_seed_by_seed_and_choose_their_settings() -> None:
    variants = finetune_variants("toy", CONFIG)
    names = [(v.group, v.name, v.seed) for v in variants]
    assert names[:4] == [
        ("finetune", "head", 0),
        ("finetune", "all", 0),
        ("optimizers", "sgd_lr3e-03", 0),
        ("search", "tuned", 0),
    ]
    assert [v.seed for v in variants[4:]] == [1, 1, 1, 1]
    head, _, sgd, tuned = variants[:4]
    assert finetune_choice(CONFIG, head) == {
        "preset": "head",
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_size": 16,
        "dropout": 0.1,
    }
    assert finetune_choice(CONFIG, sgd) == {
        "preset": "layer4",
        "optimizer": "sgd",
        "lr": 0.003,
        "batch_size": 16,
        "dropout": 0.1,
    }
    best = {"lr": 0.01, "batch_size": 8, "dropout": 0.0}
    assert finetune_choice(CONFIG, tuned, [best]) == searched_choice(CONFIG, best)
    assert searched_choice(CONFIG, best) == {"preset": "layer3", "optimizer": "adam", **best}


def test_networks_share_the_source_architecture_and_load_weights() -> None:
    options = {
        "in_shape": (1, 0, 0),
        "num_classes": 5,
        "arch": "resnet18",
        "cifar_stem": True,
        "width": 4,
    }
    nets = TransferNetworks("resnet", options, 3, True, "toy.source.weights", {})
    source = nets.source()
    target = nets.target("head", 0.2, source.state_dict())
    assert torch.equal(target.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert target(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    assert not target.layer1[0].conv1.weight.requires_grad
    again = nets.trained_target({"preset": "head", "dropout": 0.2}, target.state_dict())
    assert torch.equal(again.layer4[0].conv1.weight, target.layer4[0].conv1.weight)


def test_a_bundle_with_its_own_test_set_is_split_into_train_and_val_only() -> None:
    labels = np.repeat([0, 1], 20)
    part = LabelledImages(np.zeros((40, 1, 4, 4), np.uint8), labels, ["a", "b"])
    assert (
        split_bundle(DatasetBundle("t", part, part), val_ratio=0.25, seed=0, test_ratio=0.25)[
            "test"
        ]
        == "official"
    )
    carved = split_bundle(DatasetBundle("t", part), val_ratio=0.25, seed=0, test_ratio=0.25)
    assert (len(carved["train"]), len(carved["val"]), len(carved["test"])) == (22, 8, 10)


def test_batch_sizes_over_the_training_split_are_named() -> None:
    check_batch_sizes({"toy.batch_size": 10}, 10, "target")
    with pytest.raises(ParameterError, match=r"target training split \(10 samples\): toy.b: 11"):
        check_batch_sizes({"toy.a": 4, "toy.b": 11}, 10, "target")
