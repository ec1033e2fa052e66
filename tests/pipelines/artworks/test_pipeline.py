"""The artworks study end to end on a tiny fake Kaggle download with a tiny ResNet."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from cnn_lab.evaluation.claims import NOT_MEASURED
from cnn_lab.models.resnet import build_resnet
from tests.conftest import mlflow_runs
from tests.pipelines.artworks.fake_download import make_download
from tests.pipelines.report_checks import claim_verdicts
from tests.pipelines.snapshot import assert_matches_snapshot

VARIANTS = ["scratch", "finetune", "freeze_1_3", "freeze_1_4", "modern"]


def tiny(project: Path, checkpoint: Path | None = None) -> dict:
    """A 1-epoch ResNet-18 at 32 px; pretrained variants start from ``checkpoint``
    (ImageNet weights cannot be downloaded offline)."""
    params = {
        "artworks.data.root": str(project / "data/01_raw/artworks"),
        "artworks.data.image_size": 32,
        "artworks.data.workers": 0,
        "artworks.model.arch": "resnet18",
        "artworks.training.epochs": 1,
        "artworks.training.batch_size": 8,
        "artworks.report.misclassified": 4,
        "artworks.threads": 1,
    }
    for variant in ("finetune", "freeze_1_3", "freeze_1_4"):
        params[f"artworks.variants.{variant}.weights"] = str(checkpoint)
    return params


def _latest(path: Path) -> Path:
    versions = sorted(path.iterdir())
    assert versions, f"no saved version of {path}"
    return versions[-1] / path.name


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "resnet18_pretrained.pt"
    torch.manual_seed(1)
    torch.save(build_resnet("resnet18", 1000).state_dict(), path)
    return path


def test_pipeline_end_to_end(run_kedro, kedro_project: Path, checkpoint: Path) -> None:
    make_download(
        kedro_project / "data/01_raw/artworks",
        extra_csv_artists=("Paul Klee",),
        orphan_folders=("Unknown_Painter",),
    )
    run_kedro(["artworks"], tiny(kedro_project, checkpoint))

    inter = kedro_project / "data/02_intermediate/artworks"
    index = pd.read_csv(_latest(inter / "index.csv"))
    assert len(index) == 31  # 3 x 10 good + 1 truncated, Klee and the orphan left out
    assert sorted(index["artist"].unique()) == ["Albrecht Dürer", "Frida Kahlo", "Vincent van Gogh"]
    report = json.loads(_latest(inter / "index_report.json").read_text())
    assert report["artists_without_images"] == ["Paul Klee"]
    assert report["folders_without_artist"] == ["Unknown_Painter"]
    decoded = json.loads(_latest(inter / "decoded.json").read_text())
    assert decoded["unreadable_count"] == 1
    assert next(iter(decoded["unreadable"])).endswith("Vincent_van_Gogh_11.jpg")
    assert Path(decoded["cache_file"]).is_file()
    images = pd.read_csv(_latest(inter / "images.csv"))
    assert len(images) == 30

    split = json.loads(
        _latest(kedro_project / "data/05_model_input/artworks/split.json").read_text()
    )
    parts = [set(split[p]) for p in ("train", "val", "test")]
    assert sum(map(len, parts)) == 30 and set.union(*parts) == set(range(30))
    for part in parts[1:]:
        assert sorted(images.loc[sorted(part), "label"]) == [0, 1, 2]  # one per artist each
    stats = json.loads(
        _latest(kedro_project / "data/05_model_input/artworks/normalisation.json").read_text()
    )
    assert len(stats["mean"]) == len(stats["std"]) == 3 and stats["images"] == 24

    reporting = kedro_project / "data/08_reporting/artworks"
    summary = pd.read_csv(_latest(reporting / "summary.csv"))
    assert_matches_snapshot("artworks", "summary_columns_tiny", list(summary.columns))
    assert sorted(summary["variant"]) == sorted(VARIANTS)
    for column in (
        "test_accuracy",
        "test_balanced_accuracy",
        "test_macro_precision",
        "test_macro_recall",
        "test_macro_f1",
        "test_top5_accuracy",
    ):
        assert summary[column].between(0, 1).all(), column
    assert (summary["test_top5_accuracy"] == 1.0).all()  # 3 artists: always in the top 5
    trainable = summary.set_index("variant")["trainable_parameters"]
    assert trainable["freeze_1_4"] < trainable["freeze_1_3"] < trainable["finetune"]
    assert trainable["freeze_1_4"] == 512 * 3 + 3  # the head only
    # Every variant ran, finetune from a checkpoint: each of the lab's claims is judged.
    markdown = _latest(reporting / "report.md").read_text(encoding="utf-8")
    html = _latest(reporting / "report.html").read_text(encoding="utf-8")
    assert NOT_MEASURED not in claim_verdicts(markdown, html, "artworks")
    per_class = pd.read_csv(_latest(reporting / "per_class_report.csv"))
    assert {"Albrecht Dürer", "macro avg", "accuracy"} <= set(per_class["class"])

    pngs = [reporting / "figures" / f"{n}.png" for n in ("class_counts", "variant_comparison")]
    pngs += [
        reporting / v / f"{n}.png" for v in VARIANTS for n in ("confusion_matrix", "misclassified")
    ]
    for png in pngs:
        assert _latest(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png

    state = torch.load(
        _latest(kedro_project / "data/06_models/artworks/modern/weights.pt"), weights_only=True
    )
    assert any("cbam" in key for key in state)

    client, runs = mlflow_runs(kedro_project)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert parents[0].data.metrics["unreadable_images"] == 1
    assert sorted(r.data.tags["mlflow.runName"] for r in children) == sorted(VARIANTS)
    for child in children:
        assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == 1
        assert "test_balanced_accuracy" in child.data.metrics
        figures = {a.path for a in client.list_artifacts(child.info.run_id, "figures")}
        assert "figures/confusion_matrix.png" in figures


def test_missing_download_stops_at_once_and_says_how_to_get_it(
    run_kedro, kedro_project: Path
) -> None:
    with pytest.raises(Exception, match="artists.csv not found") as info:
        run_kedro(["artworks"])
    message = str(info.value)
    assert str((kedro_project / "data/01_raw/artworks").resolve()) in message
    assert "kaggle datasets download -d ikarus777/best-artworks-of-all-time" in message
    assert not (kedro_project / "data/06_models").exists()


def test_unknown_variant_stops_before_reading_data(run_kedro, kedro_project: Path) -> None:
    with pytest.raises(Exception, match="invalid parameter") as info:
        run_kedro(["artworks"], {**tiny(kedro_project), "artworks.run": ["scratch", "vit"]})
    assert "unknown variant(s) ['vit']; allowed: scratch, finetune" in str(info.value)
    assert not (kedro_project / "data/02_intermediate/artworks").exists()


def test_killed_study_resumes_and_matches_a_fresh_run(run_kedro, kedro_project: Path) -> None:
    """The DataLoader path: killed after epoch 1, resumed, equal to an uninterrupted run."""
    from tests.resume_support import check_kill_and_resume

    make_download(kedro_project / "data/01_raw/artworks")
    params = {
        **tiny(kedro_project),
        "artworks.run": ["scratch"],
        "artworks.training.epochs": 2,
        "artworks.data.workers": 1,
    }
    summary = check_kill_and_resume(
        run_kedro,
        kedro_project,
        "artworks",
        params,
        kill="scratch:1",
        summary="data/08_reporting/artworks/summary.csv",
        key="variant",
        metrics=["test_accuracy", "test_macro_f1", "best_val_accuracy", "epochs_run"],
    )
    assert summary["epochs_run"].tolist() == [2]
