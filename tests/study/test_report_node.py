"""The kit's report helpers: a study's report node names only its own inputs, and Kedro
still checks the whole list against it."""

from __future__ import annotations

import numpy as np
import pytest
from kedro.pipeline import node

from cnn_lab.data.sources import DatasetBundle, LabelledImages, load_source
from cnn_lab.study.params import unreached_overrides
from cnn_lab.study.reporting import REPORT_INPUTS, RunInputs, report_inputs, report_node


def test_report_node_hands_the_leading_inputs_over_as_one_run() -> None:
    seen = {}

    @report_node
    def write(run: RunInputs, history: str, *figures: str) -> tuple[str, str]:
        seen.update(run=run, history=history, figures=figures)
        return "html", "md"

    leading = [f"in{i}" for i in range(1 + len(REPORT_INPUTS))]
    assert write(*leading, "history", "f1", "f2") == ("html", "md")
    assert seen["run"] == RunInputs(*leading)
    assert (seen["history"], seen["figures"]) == ("history", ("f1", "f2"))
    assert write.__name__ == "write"
    inputs = report_inputs("toy", "history")
    assert inputs[:2] == ["params:toy", "config"] and inputs[-1] == "history"
    node(write, [*inputs, "figure"], ["html", "md"])  # every input binds
    two = report_inputs("toy", "source_data", part="target")
    assert two[2:4] == ["target_data", "target_split"] and two[-1] == "source_data"
    assert two[5] == "analysis.target.section" and len(two) == len(inputs)
    with pytest.raises(TypeError, match=r"expected \['raw_params', 'config', 'bundle'"):
        node(write, inputs[:3], ["html", "md"])  # the run's inputs are required


def test_a_bundle_resized_keeps_labels_and_both_splits() -> None:
    images = np.arange(2 * 64, dtype=np.uint8).reshape(2, 1, 8, 8)
    part = LabelledImages(images, np.array([0, 1]), ["a", "b"])
    resized = DatasetBundle("toy", part, part, ["bad.png"]).resized(16)
    assert resized.train.images.shape == (2, 1, 16, 16)
    assert resized.test.images.shape == (2, 1, 16, 16)
    assert resized.train.labels.tolist() == [0, 1] and resized.skipped == ["bad.png"]
    assert DatasetBundle("toy", part).resized(4).test is None


def test_load_source_reads_a_named_source_and_names_the_key_of_a_missing_folder(tmp_path) -> None:
    bundle = load_source({"source": "digits", "root": str(tmp_path), "download": False})
    assert bundle.train.image_shape == (1, 8, 8) and bundle.train.num_classes == 10
    folder = {"size": 8, "on_unreadable": "stop", "channels": "auto"}
    data = {"source": "image_folder", "root": str(tmp_path / "absent"), "image_folder": folder}
    with pytest.raises(Exception, match="toy.data"):
        load_source(data, key="toy.data")


def test_an_override_a_group_overrides_again_is_named_with_the_fix() -> None:
    raw = {"groups": {"cnn": {"training": {"epochs": 8}}, "mlp": {"training": {}}}}
    (line,) = unreached_overrides("toy", raw, {"training": {"epochs": 2}})
    assert "--params toy.training.epochs=2 does not reach group(s) cnn (epochs=8)" in line
    assert "override toy.groups.cnn.training.epochs as well" in line
    both = {"training": {"epochs": 2}, "groups": {"cnn": {"training": {"epochs": 2}}}}
    assert unreached_overrides("toy", raw, both) == []
