"""docs/architecture.md, "Adding a study", followed to the letter: a toy study of a few
lines over an existing model family runs end to end through the kit, with a summary, a
report and one nested MLflow run per variant and seed under the study's run."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import CSVDataset
from kedro_datasets.text import TextDataset
from pydantic import Field
from torch import nn

from cnn_lab.data.sources import DatasetBundle, load_digits_images
from cnn_lab.models import build_model
from cnn_lab.study.frame import Frame, study_pipeline
from cnn_lab.study.reporting import confusion_pipeline, split_sizes, write_report
from cnn_lab.study.spec import Study, Variant, repeat_over_seeds
from cnn_lab.study.summary import summarise
from cnn_lab.study.train import Job, outcome, train_variant
from cnn_lab.study.training_params import StudyRunParams
from cnn_lab.training.recipe import Recipe, SplitData, TrainedModel


# --- the toy study: a schema, a grid, a training node, a summary and a report -------------
class WidthParams(StudyRunParams):
    widths: list[int] = Field(min_length=1)
    threads: int = 1
    data: dict[str, float] = {"val_ratio": 0.2, "test_ratio": 0.2}


def grid(config: dict[str, Any]) -> list[Variant]:
    return repeat_over_seeds(
        "widths", config, [(None, f"w{w}", {"width": w}) for w in config["widths"]]
    )


def prepare(config: dict[str, Any]) -> DatasetBundle:
    return load_digits_images()


def train(
    bundle: DatasetBundle, split: dict[str, Any], config: dict[str, Any], *, variant: Variant
) -> tuple[dict[str, Any], nn.Module]:
    def build() -> nn.Module:
        shape = bundle.train.image_shape
        return build_model("mlp", in_shape=shape, num_classes=10, depth=2, width=variant["width"])

    recipe = Recipe(epochs=2, batch_size=64, lr=1e-2, seed=variant.seed, probe_gradients=False)
    job = Job(build, SplitData.from_bundle(bundle, split), recipe, {"width": variant["width"]})

    def describe(trained: TrainedModel) -> dict[str, Any]:
        return {
            "variant": variant.label,
            "width": variant["width"],
            "seed": variant.seed,
            **outcome(trained),
        }

    return train_variant(variant, job, config, describe)


def summary(*results: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return summarise(
        results, by=["width"], statistics=["test_accuracy"], history_keys=["variant", "seed"]
    )


def report(
    raw: dict[str, Any], bundle: DatasetBundle, split: dict[str, Any], table: pd.DataFrame
) -> tuple[str, str]:
    return write_report(
        "widths",
        raw,
        dataset=bundle.name,
        split_sizes=split_sizes(bundle, split),
        device="cpu",
        precision="fp32",
        tables={"summary": table},
        figures={},
        findings=[f"best width {int(table.loc[table.test_accuracy.idxmax(), 'width'])}"],
        problems=[],
    )


STUDY = Study("widths", WidthParams, grid)
FRAME = Frame(
    prepare=prepare,
    train=train,
    summarise=summary,
    report=report,
    report_inputs=["params:widths", "dataset", "split", "summary"],
    extra=lambda variants: confusion_pipeline("widths", variants),
)
# -----------------------------------------------------------------------------------------


@pytest.fixture
def tracking(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # checkpoints go under this folder's data/
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment("toy")
    yield
    mlflow.set_tracking_uri(None)


def test_a_toy_study_runs_end_to_end_through_the_kit(tracking, tmp_path) -> None:
    raw = {"widths": [8, 32], "seeds": [0, 1], "checkpoint_dir": "checkpoints"}
    pipe = study_pipeline(STUDY, FRAME, raw)
    assert {n.name for n in pipe.nodes} >= {
        "widths.validate_parameters",
        "widths.w8_s0.train",
        "widths.w32_s1.train",
        "widths.summarise",
        "widths.write_report",
    }
    catalog = DataCatalog()
    catalog["params:widths"] = raw
    catalog["widths.summary"] = CSVDataset(filepath=str(tmp_path / "summary.csv"))
    catalog["widths.report.md"] = TextDataset(filepath=str(tmp_path / "report.md"))
    catalog["widths.report.html"] = TextDataset(filepath=str(tmp_path / "report.html"))
    with mlflow.start_run() as parent:
        SequentialRunner().run(pipe, catalog)
    table = catalog.load("widths.summary")
    assert sorted(zip(table.variant, table.seed, strict=True)) == [
        ("w32_s0", 0),
        ("w32_s1", 1),
        ("w8_s0", 0),
        ("w8_s1", 1),
    ]
    assert set(table.seeds) == {2} and table.test_accuracy_std.notna().all()
    assert (table.test_accuracy > 0.5).all()  # digits: chance is 0.1
    # Every study's summary judges classes equally too (balanced accuracy, macro F1).
    assert {"test_balanced_accuracy", "test_macro_f1"} <= set(table.columns)
    assert "test_labels" not in table.columns
    assert table.test_macro_f1.between(0.3, 1.0).all()
    html, markdown = catalog.load("widths.report.html"), catalog.load("widths.report.md")
    assert "best width" in markdown and "<table" in html

    children = mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", output_format="list"
    )
    assert sorted(r.info.run_name for r in children) == ["w32_s0", "w32_s1", "w8_s0", "w8_s1"]
    assert {r.info.run_id for r in children} == set(table.mlflow_run_id)
    logged = [a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id, "figures")]
    assert "figures/confusion_matrix_best.png" in logged
    for run in children:
        assert "test_macro_f1" in run.data.metrics
        assert run.data.metrics["test_accuracy"] == pytest.approx(
            table.set_index("mlflow_run_id").loc[run.info.run_id, "test_accuracy"]
        )


def test_invalid_parameters_stop_at_validation_before_any_data_is_read() -> None:
    pipe = study_pipeline(STUDY, FRAME, {"widths": []})
    assert not [n for n in pipe.nodes if "training" in n.tags]
    catalog = DataCatalog()
    catalog["params:widths"] = {"widths": []}
    with pytest.raises(Exception, match=r"widths\.widths: got \[\]"):
        SequentialRunner().run(pipe, catalog)
    assert not catalog.exists("widths.dataset")
