"""The CAM study end to end on a tiny override: figures, localisation table, MLflow runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from cnn_lab.models import build_model
from tests.conftest import mlflow_runs
from tests.pipelines.report_checks import read_report
from tests.pipelines.snapshot import assert_matches_snapshot

TINY = {
    "cam.threads": 1,
    "cam.data.image_size": 32,
    "cam.data.shapes.classes": ["circle", "square", "cross"],
    "cam.data.shapes.train_size": 60,
    "cam.data.shapes.test_size": 12,
    "cam.models.small_cnn.options.widths": [4, 8],
    "cam.models.small_cnn.options.input_size": 24,
    "cam.models.small_cnn.augment.crop_size": 24,
    "cam.models.small_cnn.training.epochs": 1,
    "cam.models.resnet18.training.epochs": 1,
    "cam.pretrain.train_size": 60,  # the source task's plumbing only; learning is tested apart
    "cam.pretrain.test_size": 12,
    "cam.pretrain.training.epochs": 1,
    "cam.render.top_images": 2,
    "cam.methods": ["cam", "gradcam", "uniform", "centred"],  # scorecam: tested on its own
}


def _latest(folder: Path, name: str) -> Path:
    versions = sorted((folder / name).iterdir())
    assert versions, f"no saved version of {folder / name}"
    return versions[-1] / name


def test_pipeline_end_to_end(run_kedro, kedro_project: Path) -> None:
    run_kedro(["cam"], TINY)
    reporting = kedro_project / "data/08_reporting/cam"

    table = pd.read_csv(_latest(reporting, "localisation.csv"))
    assert_matches_snapshot("cam", "localisation_columns_tiny", list(table.columns))
    methods = ["cam", "gradcam", "uniform", "centred"]
    assert list(zip(table["model"], table["method"], strict=True)) == [
        (model, method) for model in ("small_cnn", "resnet18") for method in methods
    ]
    measures = ["accuracy", "localisation", "top1_localisation", "pointing_game", "mean_iou"]
    measures += ["deletion_auc", "insertion_auc"]
    for column in measures:
        assert table[column].between(0, 1).all(), column
    assert (table["ms_per_image"] >= 0).all()
    assert (table["images"] == 12).all()
    saliency = table[table["kind"] == "saliency"]
    assert saliency["feature_layer"].tolist() == ["features", "features", "layer4", "layer4"]
    chance = table[table["kind"] == "chance"]
    assert chance["feature_layer"].isna().all()
    # chance maps know nothing of the model: the same boxes, whichever model
    by_model = chance.set_index(["method", "model"])["localisation"].unstack()
    assert (by_model["small_cnn"] == by_model["resnet18"]).all()

    for figure in ("cam_grid", "cam_top_k", "cam_methods"):
        png = _latest(reporting / "figures", f"{figure}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    weights = _latest(kedro_project / "data/06_models/cam/small_cnn", "weights.pt")
    model = build_model(
        "gap_cnn", in_shape=(3, 32, 32), num_classes=3, widths=[4, 8], input_size=24
    )
    model.load_state_dict(torch.load(weights, weights_only=True))
    boxes = pd.read_csv(_latest(kedro_project / "data/02_intermediate/cam", "boxes.csv"))
    assert len(boxes) == 72 and set(boxes["split"]) == {"train", "test"}

    client, runs = mlflow_runs(kedro_project)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert sorted(r.data.tags["mlflow.runName"] for r in children) == [
        "resnet18",
        "resnet18_pretrain",
        "small_cnn",
    ]
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == 1
        metrics = (
            ("test_accuracy",)
            if child.data.tags["mlflow.runName"] == "resnet18_pretrain"
            else (
                "test_accuracy",
                "cam_localisation",
                "cam_pointing_game",
                "saliency_gradcam_deletion_auc",
                "saliency_centred_insertion_auc",
            )
        )
        for metric in metrics:
            assert metric in child.data.metrics, metric
    parent = parents[0]
    artifacts = [a.path for a in client.list_artifacts(parent.info.run_id, "figures")]
    assert sorted(artifacts) == [
        "figures/cam_grid.png",
        "figures/cam_methods.png",
        "figures/cam_top_k.png",
        "figures/confusion_matrix_best.png",  # the kit's confusion_pipeline logs it too
    ]
    tables = [a.path for a in client.list_artifacts(parent.info.run_id, "tables")]
    assert tables == ["tables/claims.csv", "tables/localisation.csv"]  # claims: the kit's
    assert parent.data.metrics["small_cnn_cam_localisation"] == pytest.approx(
        float(saliency["localisation"].iloc[0])
    )
    assert "resnet18_centred_pointing_game" in parent.data.metrics


def test_head_fine_tuning_from_a_checkpoint(run_kedro, kedro_project: Path) -> None:
    """The paper's ResNet-18 setting, with a local checkpoint standing in for ImageNet."""
    checkpoint = kedro_project / "resnet18.pt"
    torch.manual_seed(0)
    torch.save(
        build_model("resnet", in_shape=(3, 32, 32), num_classes=1000).state_dict(), checkpoint
    )
    params = {
        **TINY,
        "cam.models.resnet18.options.weights": str(checkpoint),
        "cam.models.resnet18.options.width": 64,
        "cam.models.resnet18.freeze": "head",
    }
    run_kedro(["cam"], params)
    _, runs = mlflow_runs(kedro_project)
    resnet = next(r for r in runs if r.data.tags.get("mlflow.runName") == "resnet18")
    assert resnet.data.params["trainable_parameters"] == str(512 * 3 + 3)
    assert resnet.data.params["weights_used"] == str(checkpoint)


def test_missing_imagenet_weights(run_kedro, kedro_project: Path, monkeypatch) -> None:
    from cnn_lab.models import resnet

    def offline(arch: str, weights: str, *, key: str = "weights"):
        raise resnet.WeightsUnavailableError(f"{key}: 'imagenet' weights could not be downloaded")

    monkeypatch.setattr(resnet, "load_weights", offline)
    params = {
        **TINY,
        "cam.models.resnet18.options.weights": "imagenet",
        "cam.models.resnet18.options.width": 64,
    }
    with pytest.raises(Exception, match=r"cam\.models\.resnet18\.scratch_if_weights_missing"):
        run_kedro(["cam"], {**params, "cam.models.resnet18.freeze": "head"})
    assert not (kedro_project / "data/02_intermediate/cam").exists()

    params["cam.models.resnet18.scratch_if_weights_missing"] = True
    params["cam.models.resnet18.freeze"] = "head"
    run_kedro(["cam"], params)
    _, runs = mlflow_runs(kedro_project)
    resnet18 = next(r for r in runs if r.data.tags.get("mlflow.runName") == "resnet18")
    assert resnet18.data.params["weights_used"] == "none"
    assert resnet18.data.params["freeze"] == "all"  # from scratch: everything trains


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"cam.data.source": "imagenet"}, "cam.data.source: got 'imagenet'"),
        ({"cam.models.small_cnn.family": "vit"}, "cam.models.small_cnn.family: got 'vit'"),
        (
            {"cam.models.small_cnn.options.depth": 3},
            "model option(s) ['depth'] are not accepted by family 'gap_cnn'",
        ),
        ({"cam.render.colormap": "rainbowz"}, "cam.render.colormap: got 'rainbowz'"),
        ({"cam.render.alpha": 1.5}, "cam.render.alpha: got 1.5"),
        ({"cam.threshold": 0}, "cam.threshold: got 0"),
        ({"cam.data.shapes.classes": ["circle", "hexagon"]}, "cam.data.shapes.classes"),
        ({"cam.models.small_cnn.freeze": "head"}, "freeze applies to the resnet family only"),
        (
            {"cam.pretrain.classes": ["star", "circle"]},
            "pretrain.classes share ['circle'] with data.shapes.classes",
        ),
        ({"cam.pretrain.classes": ["star", "hexagon"]}, "cam.pretrain.classes"),
        ({"cam.models.resnet18.traning": {}}, "cam.models.resnet18.traning: unknown key"),
        ({"cam.methods": ["cam", "gradcam+++"]}, "cam.methods"),
        ({"cam.methods": ["cam", "cam"]}, "methods must be distinct"),
        ({"cam.faithfulness_steps": 1}, "cam.faithfulness_steps: got 1"),
        (
            {"cam.models.resnet18.options.output_stride": 4},
            "options.output_stride must be one of 32, 16, 8 (input side / last feature map "
            "side), got 4",
        ),
    ],
)
def test_bad_parameters_stop_before_training(
    run_kedro, kedro_project: Path, override: dict, expected: str
) -> None:
    with pytest.raises(Exception, match="invalid parameter") as info:
        run_kedro(["cam"], {**TINY, **override})
    assert expected in str(info.value)
    assert not (kedro_project / "data/02_intermediate/cam").exists()


@pytest.mark.parametrize("env", ["base", "paper"])
def test_shipped_parameters_validate(env: str) -> None:
    from kedro.config import OmegaConfigLoader

    from cnn_lab.pipelines.cam.schema import CamParams
    from cnn_lab.settings import CONFIG_LOADER_ARGS
    from cnn_lab.study.params import validate_parameters
    from tests.conftest import PROJECT_ROOT

    args = {**CONFIG_LOADER_ARGS, "default_run_env": env}
    loader = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), **args)
    config = validate_parameters(CamParams, loader["parameters"]["cam"], "cam")
    assert set(config.models) == {"small_cnn", "resnet18"}
    # base: a 4x4 last map at 64 px; paper: the strides the ImageNet weights were trained at
    assert config.models["resnet18"].options["output_stride"] == (32 if env == "paper" else 16)
    if env == "paper":
        assert config.data.source == "imagenette" and config.data.image_size == 160
        assert config.models["small_cnn"].training.epochs == 100
        assert config.models["resnet18"].training.epochs == 5
        assert config.models["resnet18"].freeze == "head"
        assert config.models["resnet18"].options["weights"] == "imagenet"
        assert config.models["small_cnn"].options["widths"] == [64, 128, 256, 512]


def test_killed_study_resumes_and_matches_a_fresh_run(run_kedro, kedro_project: Path) -> None:
    from tests.resume_support import check_kill_and_resume

    table = check_kill_and_resume(
        run_kedro,
        kedro_project,
        "cam",
        {**TINY, "cam.models.small_cnn.training.epochs": 2},
        kill="small_cnn:1",
        summary="data/08_reporting/cam/localisation.csv",
        key=["model", "method"],  # type: ignore[arg-type]
        metrics=["accuracy", "localisation", "pointing_game", "mean_iou", "deletion_auc"],
    )
    assert {"resnet18", "small_cnn"} <= set(table["model"])


# The default's pretraining (source task and its training, cam.pretrain) with the tiny
# target. Images stay at the default 64 px: a ResNet divides the side by 32, so the tiny
# override's 32 px leave it a 1x1 map (measured: the source task then stayed near chance).
PRETRAINED = {
    **{k: v for k, v in TINY.items() if not k.startswith("cam.pretrain.")},
    "cam.data.image_size": 64,
    "cam.models.small_cnn.options.input_size": None,
    "cam.models.small_cnn.augment.crop_size": None,
    "cam.data.shapes.train_size": 300,
    "cam.data.shapes.test_size": 150,  # 50 a class: a margin over chance that is not luck
    "cam.models.resnet18.training.epochs": 3,
}


def test_pretrained_resnet_head_beats_chance(run_kedro, kedro_project: Path) -> None:
    """The default ResNet-18: trained on generated shapes of other classes, then only its
    head fine-tuned on the target shapes, is clearly above chance (1/3), and the report
    says which weights it started from."""
    run_kedro(["cam"], PRETRAINED)
    table = pd.read_csv(_latest(kedro_project / "data/08_reporting/cam", "localisation.csv"))
    accuracy = table.set_index(["model", "method"]).loc[("resnet18", "cam"), "accuracy"]
    assert accuracy >= 0.6, accuracy

    _, runs = mlflow_runs(kedro_project)
    by_name = {
        r.data.tags["mlflow.runName"]: r for r in runs if "mlflow.parentRunId" in r.data.tags
    }
    resnet = by_name["resnet18"].data.params
    assert resnet["trainable_parameters"] == str(256 * 3 + 3)  # the head of a width-32 net
    assert resnet["freeze"] == "head"
    assert by_name["resnet18_pretrain"].data.metrics["test_accuracy"] >= 0.6

    _, report, _ = read_report(kedro_project, "cam")
    assert (
        "- resnet18 weights: pretrained on generated shapes (source classes diamond, star, "
        "ellipse, semicircle, hourglass, frame; 1600 training images, 10 epochs; source test "
        "accuracy"
    ) in report
    assert "only the new head fine-tuned" in report
    assert "- small_cnn weights: none: trained from scratch, every layer" in report
