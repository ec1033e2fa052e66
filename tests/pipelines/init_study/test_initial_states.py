"""The controlled-comparison check: all zeros when the runs share their initial tensors,
and it catches a run whose shared layer differs."""

from __future__ import annotations

import numpy as np
import torch

from cnn_lab.data.sources import DatasetBundle, LabelledImages
from cnn_lab.models.tiny import SCHEMES
from cnn_lab.pipelines.init_study import nodes
from cnn_lab.study.spec import Variant


def _bundle() -> DatasetBundle:
    images = np.zeros((20, 1, 28, 28), dtype=np.uint8)
    labels = np.arange(20) % 10
    return DatasetBundle("tiny", LabelledImages(images, labels, [str(d) for d in range(10)]))


def _variants(seeds: list[int]) -> list[Variant]:
    return nodes.variants({"seed": seeds[0], "seeds": seeds if len(seeds) > 1 else None})


def _initial_states(variants: list[Variant]) -> list[dict[str, torch.Tensor]]:
    bundle = _bundle()
    shared = {
        (network, seed): draw.state_dict()
        for seed in dict.fromkeys(v.seed for v in variants)
        for network, draw in zip(
            nodes.NETWORKS, nodes.shared_initial_networks(bundle, seed=seed), strict=True
        )
    }
    return [
        {
            k: t.detach().clone()
            for k, t in nodes.initialise_run(shared[v.group, v.seed], bundle, variant=v)
            .state_dict()
            .items()
        }
        for v in variants
    ]


def test_shared_initial_tensors_are_identical() -> None:
    variants = _variants([3])
    table = nodes.compare_initial_states(*_initial_states(variants), variants=variants)
    assert len(table) > 0 and "seed" not in table
    assert (table["difference_norm"] == 0.0).all() and table["identical"].all()
    pairs = table.groupby("tensor").size()
    assert pairs["conv1.bias"] == 15  # every pair of the six runs
    # by-hand weights: 4 runs (HF, HT of both networks) -> 6 pairs; default: NetA1-DT, NetA2-DT
    assert pairs["conv1.weight"] == 6 + 1
    assert pairs["fc.weight"] == 3 + 3  # within each network only
    assert pairs["conv2.weight"] == 3  # NetA2 only
    weight_rows = table[table["tensor"] == "conv1.weight"]
    assert not ((weight_rows["run_a"] == "NetA1-HF") & (weight_rows["run_b"] == "NetA1-DT")).any()


def test_a_layer_broken_on_purpose_shows_up() -> None:
    variants = _variants([3])
    states = _initial_states(variants)
    broken = next(i for i, v in enumerate(variants) if nodes.run_of(v) == "NetA2-DT")
    states[broken]["conv2.weight"][0, 0, 0, 0] += 1e-6
    table = nodes.compare_initial_states(*states, variants=variants)
    differing = table[~table["identical"]]
    assert set(differing["tensor"]) == {"conv2.weight"}
    assert len(differing) == 2  # NetA2-DT against NetA2-HF and NetA2-HT
    assert (differing["difference_norm"] > 0).all()
    assert (differing["run_b"] == "NetA2-DT").all()


def test_runs_are_compared_within_their_seed_only() -> None:
    variants = _variants([3, 4])
    table = nodes.compare_initial_states(*_initial_states(variants), variants=variants)
    assert table["identical"].all() and sorted(set(table["seed"])) == [3, 4]
    one_seed = nodes.compare_initial_states(
        *_initial_states(_variants([3])), variants=_variants([3])
    )
    assert (table.groupby("seed").size() == len(one_seed)).all()


def test_the_first_layer_is_shared_across_networks() -> None:
    variants = _variants([3])
    runs = [(v.group, v["scheme"]) for v in variants]
    states = dict(zip(runs, _initial_states(variants), strict=True))
    for scheme in SCHEMES:
        a1, a2 = states[("net_a1", scheme)], states[("net_a2", scheme)]
        assert torch.equal(a1["conv1.weight"], a2["conv1.weight"])
        assert torch.equal(a1["conv1.bias"], a2["conv1.bias"])
