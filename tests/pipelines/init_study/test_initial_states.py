"""The controlled-comparison check: all zeros when the runs share their initial tensors,
and it catches a run whose shared layer differs."""

from __future__ import annotations

import numpy as np
import torch

from cnn_lab.data.sources import DatasetBundle, LabelledImages
from cnn_lab.models.tiny import SCHEMES
from cnn_lab.pipelines.init_study import nodes


def _bundle() -> DatasetBundle:
    images = np.zeros((20, 1, 28, 28), dtype=np.uint8)
    labels = np.arange(20) % 10
    return DatasetBundle("tiny", LabelledImages(images, labels, [str(d) for d in range(10)]))


def _initial_states() -> list[dict[str, torch.Tensor]]:
    bundle = _bundle()
    shared = dict(
        zip(nodes.NETWORKS, nodes.shared_initial_networks(bundle, {"seed": 3}), strict=True)
    )
    return [
        {
            k: v.detach().clone()
            for k, v in nodes.initialise_run(shared[n].state_dict(), bundle, network=n, scheme=s)
            .state_dict()
            .items()
        }
        for n, s in nodes.RUNS
    ]


def test_shared_initial_tensors_are_identical() -> None:
    table = nodes.compare_initial_states(*_initial_states())
    assert len(table) > 0
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
    states = _initial_states()
    broken = nodes.RUNS.index(("net_a2", "DT"))
    states[broken]["conv2.weight"][0, 0, 0, 0] += 1e-6
    table = nodes.compare_initial_states(*states)
    differing = table[~table["identical"]]
    assert set(differing["tensor"]) == {"conv2.weight"}
    assert len(differing) == 2  # NetA2-DT against NetA2-HF and NetA2-HT
    assert (differing["difference_norm"] > 0).all()
    assert (differing["run_b"] == "NetA2-DT").all()


def test_the_first_layer_is_shared_across_networks() -> None:
    states = dict(zip(nodes.RUNS, _initial_states(), strict=True))
    for scheme in SCHEMES:
        a1, a2 = states[("net_a1", scheme)], states[("net_a2", scheme)]
        assert torch.equal(a1["conv1.weight"], a2["conv1.weight"])
        assert torch.equal(a1["conv1.bias"], a2["conv1.bias"])
