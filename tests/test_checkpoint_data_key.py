"""A checkpoint is keyed by the images it was trained on, not only by the split's
indices: two image folders of the same size never share one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from cnn_lab.pipelines.cnn_depth import nodes
from cnn_lab.pipelines.cnn_depth.pipeline import STUDY
from cnn_lab.study.shared_nodes import split_dataset
from cnn_lab.study.variant_run import data_fingerprint
from cnn_lab.training.recipe import SplitData


def _folder(root: Path, seed: int) -> Path:
    """Two classes of ten 8x8 images; only the pixels depend on ``seed``."""
    rng = np.random.default_rng(seed)
    for name in ("circle", "square"):
        (root / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def _config(root: Path, checkpoints: Path) -> dict:
    raw = yaml.safe_load(Path("conf/base/parameters_cnn_depth.yml").read_text())["cnn_depth"]
    raw.update(threads=1, device="cpu", checkpoint_dir=str(checkpoints))
    raw["data"].update(source="image_folder", root=str(root))
    raw["data"]["image_folder"]["size"] = 8
    raw["groups"]["cnn"]["enabled"] = False
    raw["groups"]["mlp"].update(families=["mlp"], depths=[2], model={"width": 4})
    raw["training"]["epochs"] = 1
    return STUDY.validate(raw)


def _train(root: Path, checkpoints: Path) -> tuple[dict, str]:
    """Train the one variant on ``root``'s images; its split and its data's fingerprint."""
    config = _config(root, checkpoints)
    bundle = nodes.prepare_dataset(config)
    split = split_dataset(bundle, config)
    (variant,) = nodes.variants(config)
    nodes.train_variant(bundle, split, config, variant=variant)
    return split, data_fingerprint(SplitData.from_bundle(bundle, split))


def test_two_image_folders_of_one_size_get_their_own_checkpoints(kedro_project: Path) -> None:
    checkpoints = kedro_project / "checkpoints"
    # Same folder name (the dataset's name), same size: only the pixels tell them apart.
    split_a, key_a = _train(_folder(kedro_project / "v1" / "images", seed=1), checkpoints)
    split_b, key_b = _train(_folder(kedro_project / "v2" / "images", seed=2), checkpoints)
    assert split_a == split_b  # same size, same labels: the same indices
    assert key_a != key_b
    files = sorted(p.name for p in checkpoints.glob("mlp_d2-*.ckpt"))
    assert len(files) == 2, files  # b trained afresh; it did not reuse a's weights
