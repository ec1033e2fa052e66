"""The frame's training node reads study-wide datasets by short name and, with a leading
dot, the variant's own dataset (one its study's ``extra`` nodes write)."""

from __future__ import annotations

from cnn_lab.study.frame import Frame, training_inputs, training_node
from cnn_lab.study.spec import Variant


def _train(*inputs: object, variant: Variant) -> tuple[object, object]:
    return inputs, variant


def test_a_leading_dot_names_the_variants_own_dataset() -> None:
    variant = Variant("init_study", "hf", 1, "net_a1", {"scheme": "HF"}, seeded=True)
    short = ("dataset", "params:init_study", ".initial_weights", "config")
    assert training_inputs(variant, short) == [
        "init_study.dataset",
        "params:init_study",
        "init_study.net_a1.hf_s1.initial_weights",
        "init_study.config",
    ]


def test_the_training_node_reads_the_variants_own_dataset() -> None:
    frame = Frame(
        prepare=dict,
        train=_train,
        summarise=dict,
        report=dict,
        report_inputs=(),
        train_inputs=("dataset", ".initial_weights"),
    )
    trained = training_node(frame, Variant("init_study", "dt", 0, "net_a2", {"scheme": "DT"}))
    assert trained.name == "init_study.net_a2.dt.train"
    assert trained.inputs == ["init_study.dataset", "init_study.net_a2.dt.initial_weights"]
    assert trained.outputs == ["init_study.net_a2.dt.result", "init_study.net_a2.dt.weights"]
