"""The initialisation study end to end on a 1-epoch override."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from cnn_lab.models import build_model
from tests.conftest import mlflow_runs
from tests.pipelines.snapshot import assert_matches_snapshot

TINY = {"init_study.training.epochs": 1, "init_study.threads": 1}
RUN_NAMES = ["NetA1-DT", "NetA1-HF", "NetA1-HT", "NetA2-DT", "NetA2-HF", "NetA2-HT"]


def _latest(folder: Path, name: str) -> Path:
    versions = sorted((folder / name).iterdir())
    assert versions, f"no saved version of {folder / name}"
    return versions[-1] / name


def test_pipeline_end_to_end(run_kedro, kedro_project: Path) -> None:
    run_kedro(["init_study"], TINY)
    reporting = kedro_project / "data/08_reporting/init_study"

    summary = pd.read_csv(_latest(reporting, "summary.csv"))
    assert_matches_snapshot("init_study", "summary_columns_tiny", list(summary.columns))
    assert sorted(summary["run"]) == RUN_NAMES
    for column in (
        "max_test_accuracy",
        "final_test_accuracy",
        "final_train_loss",
        "seconds_per_batch",
        "train_seconds",
        "wall_seconds",
        "trainable_parameters",
    ):
        assert summary[column].notna().all(), column
    assert summary["final_test_accuracy"].between(0, 1).all()
    trainable = summary.set_index("run")["trainable_parameters"]
    assert trainable["NetA1-HT"] == trainable["NetA1-DT"] == 4 * 26 + 576 * 10 + 10
    assert trainable["NetA1-HF"] == 576 * 10 + 10  # the frozen first layer is not counted
    assert trainable["NetA2-HT"] - trainable["NetA2-HF"] == 4 * 26

    history = pd.read_csv(_latest(reporting, "history.csv"))
    assert len(history) == 6  # 6 runs x 1 epoch
    for column in ("train_loss", "test_accuracy", "test_loss", "val_accuracy", "batch_time"):
        assert history[column].notna().all(), column

    differences = pd.read_csv(_latest(reporting, "initial_differences.csv"))
    assert len(differences) > 0 and (differences["difference_norm"] == 0).all()

    for figure in (
        "inset_comparison",
        "architecture_comparison",
        "recovery_comparison",
        "time_per_batch",
        "kernels",
    ):
        png = _latest(reporting / "figures", f"{figure}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    models = kedro_project / "data/06_models/init_study/net_a1/hf"
    initial = torch.load(_latest(models, "initial_weights.pt"), weights_only=True)
    trained = torch.load(_latest(models, "weights.pt"), weights_only=True)
    assert torch.equal(initial["conv1.weight"], trained["conv1.weight"])  # HF: frozen
    assert set(initial["conv1.weight"].unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(initial["fc.weight"], trained["fc.weight"])
    build_model("net_a1", in_shape=(1, 28, 28), num_classes=10).load_state_dict(trained)

    client, runs = mlflow_runs(kedro_project)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert sorted(r.data.tags["mlflow.runName"] for r in children) == RUN_NAMES
    for child in children:
        steps = client.get_metric_history(child.info.run_id, "test_accuracy")
        assert [m.step for m in steps] == [1]
        assert child.data.params["scheme"] in {"HF", "HT", "DT"}
    parent_id = parents[0].info.run_id
    parent_figures = [a.path for a in client.list_artifacts(parent_id, "figures")]
    assert "figures/recovery_comparison.png" in parent_figures
    assert "figures/kernels.png" in parent_figures
    tables = [a.path for a in client.list_artifacts(parent_id, "tables")]
    assert "tables/initial_differences.csv" in tables


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"init_study.data.image_size": 4}, "init_study.data.image_size: got 4"),
        ({"init_study.training.lr": -1}, "init_study.training.lr: got -1"),
        ({"init_study.data.source": "cifar10"}, "init_study.data.source: got 'cifar10'"),
        ({"init_study.training.epohcs": 3}, "init_study.training.epohcs: unknown key"),
    ],
)
def test_bad_parameters_stop_before_training(
    run_kedro, kedro_project: Path, override: dict, expected: str
) -> None:
    with pytest.raises(Exception, match="invalid parameter") as info:
        run_kedro(["init_study"], {**TINY, **override})
    assert expected in str(info.value)
    assert not (kedro_project / "data/02_intermediate/init_study").exists()
    assert not (kedro_project / "data/06_models/init_study").exists()


def test_paper_env_asks_for_mnist_and_names_the_key(run_kedro, kedro_project: Path) -> None:
    params = {"init_study.data.root": "nowhere", "init_study.data.download": False}
    with pytest.raises(
        Exception, match=r"mnist was not found under nowhere.*init_study\.data\.root"
    ):
        run_kedro(["init_study"], params, env="paper")
    assert not (kedro_project / "data/06_models").exists()


def test_killed_study_resumes_and_matches_a_fresh_run(run_kedro, kedro_project: Path) -> None:
    from tests.resume_support import check_kill_and_resume

    two_epochs = {**TINY, "init_study.training.epochs": 2}
    summary = check_kill_and_resume(
        run_kedro,
        kedro_project,
        "init_study",
        two_epochs,
        kill="NetA2-HT:1",
        summary="data/08_reporting/init_study/summary.csv",
        key="run",
        metrics=["max_test_accuracy", "final_test_accuracy", "final_train_loss", "epochs_run"],
    )
    assert summary["epochs_run"].tolist() == [2] * 6
