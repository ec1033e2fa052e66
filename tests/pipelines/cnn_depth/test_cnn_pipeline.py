"""The CNN half of the depth study end to end on tiny overrides, and its bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cnn_lab.models import build_model
from tests.conftest import mlflow_runs

TINY_CNN = {
    "cnn_depth.groups.mlp.enabled": False,
    "cnn_depth.groups.cnn.depths": [4],
    "cnn_depth.groups.cnn.image_size": 8,
    "cnn_depth.groups.cnn.model.width": 4,
    "cnn_depth.groups.cnn.training.epochs": 1,
}
HE = {  # a 6n+2 CIFAR ResNet with He et al.'s iteration schedule, shrunk
    "cnn_depth.groups.he.families": ["cifar_resnet", "cifar_plain"],
    "cnn_depth.groups.he.depths": [8],
    "cnn_depth.groups.he.model.width": 4,
    "cnn_depth.groups.he.training.optimizer": "sgd",
    "cnn_depth.groups.he.training.lr": 0.1,
    "cnn_depth.groups.he.training.weight_decay": 0.0001,
    "cnn_depth.groups.he.training.scheduler": "multistep",
    "cnn_depth.groups.he.training.scheduler_interval": "iteration",
    "cnn_depth.groups.he.training.milestones": [3],
    "cnn_depth.groups.he.training.warmup_steps": 2,
    "cnn_depth.groups.he.training.warmup_lr": 0.01,
    "cnn_depth.groups.he.training.max_steps": 5,
    "cnn_depth.groups.he.training.epochs": 3,
    "cnn_depth.data.augment.crop_padding": 2,
    "cnn_depth.data.augment.flip": True,
}


def _latest(folder: Path, name: str) -> Path:
    return sorted((folder / name).iterdir())[-1] / name


def test_cnn_pipeline_end_to_end(run_kedro, kedro_project: Path) -> None:
    run_kedro(["cnn_depth"], {**TINY_CNN, **HE})
    reporting = kedro_project / "data/08_reporting/cnn_depth"
    summary = pd.read_csv(_latest(reporting, "summary.csv")).set_index("variant")
    assert sorted(summary.index) == ["cifar_plain_d8", "cifar_resnet_d8", "cnn_d4", "rescnn_d4"]
    assert summary.loc["cnn_d4", "parameters"] == summary.loc["rescnn_d4", "parameters"]
    assert summary.loc["cifar_resnet_d8", "steps"] == 5  # max_steps cut the 3 epochs short
    assert summary.loc["cnn_d4", "epochs_run"] == 1
    assert summary["test_accuracy"].between(0, 1).all()

    history = pd.read_csv(_latest(reporting, "history.csv"))
    he = history[history["variant"] == "cifar_resnet_d8"]
    assert he["lr"].round(6).tolist() == [0.01]  # warm-up lr at the first epoch's start
    # a depth-8 CIFAR ResNet has 8 weight layers, each probed
    assert he[[f"grad_norm_{i:02d}" for i in range(8)]].notna().all().all()

    weights = _latest(kedro_project / "data/06_models/cnn_depth/cnn/rescnn_d4", "weights.pt")
    model = build_model("rescnn", in_shape=(1, 8, 8), num_classes=10, depth=4, width=4)
    model.load_state_dict(torch.load(weights, weights_only=True))

    client, runs = mlflow_runs(kedro_project)
    children = {
        r.data.tags["mlflow.runName"]: r for r in runs if "mlflow.parentRunId" in r.data.tags
    }
    assert children["cnn_d4"].data.params["image_size"] == "8x8"
    assert children["cifar_resnet_d8"].data.params["scheduler_interval"] == "iteration"
    assert children["cifar_resnet_d8"].data.params["augment_crop_padding"] == "2"


def _folder(root: Path, broken: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for name in ("circle", "square"):
        (root / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)).save(
                root / name / f"{i}.png"
            )
    if broken:
        (root / "square" / "broken.jpg").write_bytes(b"not an image")
    return root


FOLDER = {
    **TINY_CNN,
    "cnn_depth.data.source": "image_folder",
    "cnn_depth.data.image_folder.size": 8,
}


def test_image_folder_skip_is_counted_in_mlflow(run_kedro, kedro_project: Path) -> None:
    root = _folder(kedro_project / "images", broken=True)
    params = {
        **FOLDER,
        "cnn_depth.data.root": str(root),
        "cnn_depth.data.image_folder.on_unreadable": "skip",
        "cnn_depth.groups.cnn.families": ["cnn"],
    }
    run_kedro(["cnn_depth"], params)
    client, runs = mlflow_runs(kedro_project)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.metrics["skipped_images"] == 1
    child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert child.data.params["skipped_images"] == "1"
    assert child.data.params["image_size"] == "8x8"
    listed = client.download_artifacts(parent.info.run_id, "data/skipped_images.txt")
    assert Path(listed).read_text().strip().endswith("broken.jpg")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {**HE, "cnn_depth.groups.he.depths": [10]},
            r"cnn_depth\.groups\.he \(cifar_resnet, depths entry 10.*depth must be 6n\+2",
        ),
        (
            {"cnn_depth.groups.cnn.depths": [8], "cnn_depth.groups.cnn.image_size": 4},
            r"cnn_depth\.groups\.cnn \(cnn, depths entry 8.*inputs 1x4x4\): input 4x4 is too "
            r"small.*downsample_at=\[0\.25, 0\.5, 0\.75\]",
        ),
    ],
)
def test_bad_cnn_inputs_stop_before_training(
    run_kedro, kedro_project: Path, override: dict, expected: str
) -> None:
    with pytest.raises(Exception, match=expected):
        run_kedro(["cnn_depth"], {**TINY_CNN, **override})
    assert not (kedro_project / "data/06_models").exists()


def test_empty_image_folder_stops_before_training(run_kedro, kedro_project: Path) -> None:
    (kedro_project / "empty" / "cat").mkdir(parents=True)
    params = {**FOLDER, "cnn_depth.data.root": str(kedro_project / "empty")}
    with pytest.raises(
        Exception, match=r"no images found in .*empty \(parameter cnn_depth\.data\.root\)"
    ):
        run_kedro(["cnn_depth"], params)
    assert not (kedro_project / "data/06_models").exists()


def _base_params() -> dict:
    import yaml

    return yaml.safe_load(Path("conf/base/parameters_cnn_depth.yml").read_text())["cnn_depth"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda p: p["groups"]["cnn"]["training"].update(scheduler="multistep"),
            "cnn_depth.groups.cnn.training.milestones: required by scheduler 'multistep'",
        ),
        (
            lambda p: p["groups"]["mlp"].update(model={"widht": 64}),
            "cnn_depth.groups.mlp.model.widht: unknown key: not an option of family 'mlp'; "
            "allowed: width",
        ),
        (
            lambda p: p["groups"]["cnn"]["training"].update(epochs=0),
            "cnn_depth.groups.cnn.training.epochs: got 0; Input should be greater than or "
            "equal to 1",
        ),
        (
            lambda p: p["groups"]["cnn"].update(image_size=0),
            "cnn_depth.groups.cnn.image_size: got 0",
        ),
        (
            lambda p: p["data"]["image_folder"].update(on_unreadable="ignore"),
            "cnn_depth.data.image_folder.on_unreadable: got 'ignore'; Input should be 'stop' or "
            "'skip'",
        ),
        (
            lambda p: p["data"]["image_folder"].update(channels=2),
            "cnn_depth.data.image_folder.channels: got 2; Input should be 'auto', 1 or 3",
        ),
        (
            lambda p: p["training"].update(warmup_steps=400),
            "cnn_depth.training.warmup_lr: required by warmup_steps=400",
        ),
        (
            lambda p: (
                p["groups"]["cnn"].update(enabled=False),
                p["groups"]["mlp"].update(enabled=0),
            ),
            "every group has enabled: false; nothing would be trained",
        ),
    ],
)
def test_bad_cnn_parameters_are_named(monkeypatch, change, expected: str) -> None:
    from cnn_lab.pipelines.cnn_depth.pipeline import STUDY
    from cnn_lab.study.params import ParameterError
    from tests.conftest import PROJECT_ROOT

    monkeypatch.chdir(PROJECT_ROOT)
    params = _base_params()
    change(params)
    with pytest.raises(ParameterError) as info:
        STUDY.validate(params)
    assert expected in str(info.value)


def test_group_training_completes_from_the_top_level(monkeypatch) -> None:
    from cnn_lab.pipelines.cnn_depth.pipeline import STUDY
    from tests.conftest import PROJECT_ROOT

    monkeypatch.chdir(PROJECT_ROOT)
    params = _base_params()
    params["training"]["milestones"] = [3]
    params["groups"]["cnn"]["training"]["scheduler"] = "multistep"
    config = STUDY.validate(params)
    assert config["groups"]["cnn"]["training"]["milestones"] == [3]
    assert config["groups"]["cnn"]["training"]["epochs"] == 8
    assert config["groups"]["mlp"]["training"]["epochs"] == 20


@pytest.mark.parametrize(
    ("env", "source", "variants"),
    [
        ("paper", "mnist", 12),  # MLPs on MNIST; CNN group switched off
        ("paper_cnn", "cifar10", 8),  # lab: cnn/rescnn at 4/8/16/32
        ("paper_he", "cifar10", 9),  # plain 20-56, ResNet 20-110
    ],
)
def test_paper_envs_validate(env: str, source: str, variants: int) -> None:
    from kedro.config import OmegaConfigLoader

    from cnn_lab.pipelines.cnn_depth.nodes import enabled_variants
    from cnn_lab.pipelines.cnn_depth.pipeline import STUDY
    from cnn_lab.settings import CONFIG_LOADER_ARGS
    from tests.conftest import PROJECT_ROOT

    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS
    )
    raw = dict(loader["parameters"]["cnn_depth"])
    config = STUDY.validate(raw)
    assert config["data"]["source"] == source
    assert len(enabled_variants(config)) == variants
    assert [(v.group, v["family"], v["depth"]) for v in STUDY.variants(raw)] == enabled_variants(
        config
    )
    if env == "paper_he":
        he = config["groups"]["cifar110"]["training"]
        assert (he["warmup_steps"], he["warmup_lr"], he["max_steps"]) == (400, 0.01, 64000)
        assert he["milestones"] == [32000, 48000] and he["scheduler_interval"] == "iteration"
        assert config["groups"]["cifar"]["training"]["warmup_steps"] == 0


def test_greyscale_image_folder_trains_on_one_channel(run_kedro, kedro_project: Path) -> None:
    root = kedro_project / "grey"
    rng = np.random.default_rng(0)
    for name in ("circle", "square"):
        (root / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 256, (9, 9), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(root / name / f"{i}.png")
    params = {**FOLDER, "cnn_depth.data.root": str(root), "cnn_depth.groups.cnn.families": ["cnn"]}
    run_kedro(["cnn_depth"], params)
    weights = _latest(kedro_project / "data/06_models/cnn_depth/cnn/cnn_d4", "weights.pt")
    state = torch.load(weights, weights_only=True)
    first = next(v for k, v in state.items() if k.endswith("weight"))
    assert first.shape[1] == 1  # the stem convolution sees one channel, not three
    reporting = kedro_project / "data/08_reporting/cnn_depth"
    assert "grey (1x8x8 images as stored)" in _latest(reporting, "report.md").read_text()
