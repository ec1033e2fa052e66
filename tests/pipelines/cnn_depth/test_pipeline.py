"""The depth study end to end on a 1-epoch, depth-2 override."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from cnn_lab.models import build_model
from tests.conftest import mlflow_runs
from tests.pipelines.snapshot import assert_matches_snapshot

TINY = {
    "cnn_depth.groups.cnn.enabled": False,  # the CNN half has its own tests
    "cnn_depth.groups.mlp.depths": [2],
    "cnn_depth.groups.mlp.model.width": 16,
    "cnn_depth.training.epochs": 1,
}


def _latest(folder: Path, name: str) -> Path:
    versions = sorted((folder / name).iterdir())
    assert versions, f"no saved version of {folder / name}"
    return versions[-1] / name


def test_pipeline_end_to_end(
    run_kedro, kedro_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_kedro(["cnn_depth"], TINY)
    reporting = kedro_project / "data/08_reporting/cnn_depth"

    # The run ends with the report's own file, the best rows and the MLflow run.
    closing = capsys.readouterr().out.split("== cnn_depth ==")[-1]
    report = Path(closing.split("report: ")[1].splitlines()[0])
    assert report.is_file() and report.name == "report.html"
    assert report.parent.parent == (reporting / "report.html").resolve()
    assert "best of 3 by test accuracy" in closing

    summary = pd.read_csv(_latest(reporting, "summary.csv"))
    assert_matches_snapshot("cnn_depth", "summary_columns_tiny", list(summary.columns))
    assert sorted(summary["family"]) == ["mlp", "mlp_bn", "resmlp"]
    assert set(summary["depth"]) == {2}
    for column in (
        "parameters",
        "best_val_accuracy",
        "final_val_accuracy",
        "test_accuracy",
        "train_seconds",
        "seconds_per_epoch",
    ):
        assert summary[column].notna().all(), column
    assert summary["test_accuracy"].between(0, 1).all()

    history = pd.read_csv(_latest(reporting, "history.csv"))
    assert len(history) == 3  # 3 variants x 1 epoch
    for column in (
        "train_loss",
        "val_loss",
        "val_accuracy",
        "lr",
        "epoch_time",
        "grad_norm_00",
        "grad_norm_01",
    ):
        assert history[column].notna().all(), column

    for figure in (
        "loss_curves",
        "accuracy_curves",
        "gradient_norms",
        "accuracy_vs_depth",
        "training_time",
    ):
        png = _latest(reporting / "figures", f"{figure}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    weights = _latest(kedro_project / "data/06_models/cnn_depth/mlp/resmlp_d2", "weights.pt")
    state = torch.load(weights, weights_only=True)
    model = build_model("resmlp", in_shape=(1, 8, 8), num_classes=10, depth=2, width=16)
    model.load_state_dict(state)

    split = _latest(kedro_project / "data/05_model_input/cnn_depth", "split.json").read_text()
    assert '"train"' in split and '"test"' in split

    client, runs = mlflow_runs(kedro_project)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    # Named after the study and the env; the experiment opens on the runs table.
    assert parents[0].data.tags["mlflow.runName"] == "cnn_depth (local)"
    assert parents[0].info.run_id in closing
    experiment = client.get_experiment(parents[0].info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert sorted(r.data.tags["mlflow.runName"] for r in children) == [
        "mlp_bn_d2",
        "mlp_d2",
        "resmlp_d2",
    ]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    for child in children:
        assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == 1
        assert child.data.params["depth"] == "2"
        # The resolved performance choices are logged with each variant (MLPs: no layout).
        assert child.data.params["perf_precision"] == "fp32"  # auto: fp32 on every CPU
        assert child.data.params["perf_channels_last"] == "False"
        assert [a.path for a in client.list_artifacts(child.info.run_id, "figures")]
    parent_figures = [a.path for a in client.list_artifacts(parents[0].info.run_id, "figures")]
    assert "figures/gradient_norms.png" in parent_figures


def test_rerun_keeps_earlier_results(run_kedro, kedro_project: Path) -> None:
    run_kedro(["cnn_depth"], TINY)
    run_kedro(["cnn_depth"], TINY)
    versions = list((kedro_project / "data/08_reporting/cnn_depth/summary.csv").iterdir())
    assert len(versions) == 2


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"cnn_depth.groups.mlp.families": ["mlp", "transformer"]},
            "cnn_depth.groups.mlp.families: got ['mlp', 'transformer']; unknown family",
        ),
        ({"cnn_depth.data.source": "imagenet"}, "cnn_depth.data.source: got 'imagenet'"),
        (
            {"cnn_depth.training.optimizer": "adamm"},
            "cnn_depth.training.optimizer: got 'adamm'; Input should be 'adam', 'sgd', 'adamw'",
        ),
        ({"cnn_depth.groups.mlp.depths": [0]}, "cnn_depth.groups.mlp.depths.0: got 0"),
        ({"cnn_depth.data.val_ratio": 1.5}, "cnn_depth.data.val_ratio: got 1.5"),
        ({"cnn_depth.training.epohcs": 3}, "cnn_depth.training.epohcs: unknown key"),
    ],
)
def test_bad_parameters_stop_before_training(
    run_kedro, kedro_project: Path, override: dict, expected: str
) -> None:
    with pytest.raises(Exception, match="invalid parameter") as info:
        run_kedro(["cnn_depth"], {**TINY, **override})
    assert expected in str(info.value)
    assert not (kedro_project / "data/06_models").exists()
    assert not (kedro_project / "data/02_intermediate/cnn_depth").exists()


def test_missing_mnist_without_download_names_the_path(run_kedro, kedro_project: Path) -> None:
    params = {**TINY, "cnn_depth.data.source": "mnist", "cnn_depth.data.root": "nowhere"}
    with pytest.raises(
        Exception, match=r"mnist was not found under nowhere.*cnn_depth\.data\.root"
    ):
        run_kedro(["cnn_depth"], params)
    assert not (kedro_project / "data/06_models").exists()


def test_an_empty_parameters_file_fails_at_validation(run_kedro, kedro_project: Path) -> None:
    (kedro_project / "conf/base/parameters_cnn_depth.yml").write_text("# emptied\n")
    with pytest.raises(Exception, match=r"cnn_depth: expected a mapping of parameters, got None"):
        run_kedro(["cnn_depth"])
    assert not (kedro_project / "data/02_intermediate/cnn_depth").exists()
