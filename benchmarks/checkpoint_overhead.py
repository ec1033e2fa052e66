"""Overhead of per-epoch checkpointing on default-like depth-study variants.

Trains each variant on scikit-learn's digits (the base env's data) with and without a
checkpoint store, alternating so machine noise hits both alike, and also times the
checkpoint writes themselves. Prints wall seconds and the overhead in percent.

    python benchmarks/checkpoint_overhead.py [--rounds 3] [--epochs 5] [--threads 1]

``--kedro-run`` instead runs the default ``kedro run --pipelines=cnn_depth`` in this
process, in a throwaway copy of the project's conf (its own data/ and mlflow.db), and
reports the time spent writing checkpoints as a share of the run's wall time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from cnn_lab.data.sources import load_digits_images
from cnn_lab.data.splits import stratified_split
from cnn_lab.models import build_model
from cnn_lab.training.checkpoint import CheckpointStore
from cnn_lab.training.recipe import Recipe, SplitData, train_model

# (family, depth, model options, input size): the base env's MLP and CNN groups.
VARIANTS = [
    ("mlp", 8, {"width": 128}, None),
    ("cnn", 8, {"width": 16, "downsample_at": [0.25, 0.5, 0.75]}, 16),
]


_save = CheckpointStore.save


class TimedStore(CheckpointStore):
    seconds = 0.0

    def save(self, checkpoint) -> None:  # noqa: ANN001
        started = time.perf_counter()
        _save(self, checkpoint)
        TimedStore.seconds += time.perf_counter() - started


def run(data: SplitData, variant, epochs: int, folder: str | None) -> float:
    family, depth, options, size = variant
    recipe = Recipe(epochs=epochs, batch_size=64, lr=1e-3)
    store = TimedStore(folder, f"{family}{depth}", family) if folder else None

    def build() -> torch.nn.Module:
        shape = (1, size, size) if size else (1, 8, 8)
        return build_model(family, in_shape=shape, num_classes=10, depth=depth, **options)

    started = time.perf_counter()
    train_model(build, data, recipe, label=family, input_size=size, checkpoint=store)
    return time.perf_counter() - started


def kedro_run(threads: int) -> None:
    """The default cnn_depth run with every checkpoint write timed."""
    import os
    import shutil
    from pathlib import Path

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    project_root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        shutil.copy(project_root / "pyproject.toml", project)
        shutil.copytree(project_root / "conf", project / "conf")
        (project / "src").mkdir()
        os.chdir(project)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{project}/mlflow.db"
        CheckpointStore.save = TimedStore.save  # every store the pipeline opens
        bootstrap_project(project)
        params = {"cnn_depth": {"threads": threads}} if threads else {}
        started = time.perf_counter()
        with KedroSession.create(project_path=project, runtime_params=params) as session:
            session.run(pipeline_names=["cnn_depth"])
        wall = time.perf_counter() - started
        writes = len(list((project / "data/06_models/checkpoints/cnn_depth").glob("*.ckpt")))
    print(
        f"default cnn_depth run: wall {wall:.1f} s, checkpoint writes {TimedStore.seconds:.2f} s"
        f" = {100 * TimedStore.seconds / wall:.1f}% of the run ({writes} checkpoint files)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kedro-run", action="store_true", help="time the default run")
    args = parser.parse_args()
    if args.kedro_run:
        kedro_run(args.threads)
        return
    torch.set_num_threads(args.threads)
    bundle = load_digits_images()
    split = stratified_split(bundle.train.labels, val_ratio=0.2, seed=0, test_ratio=0.2)
    data = SplitData.from_bundle(bundle, split)
    for variant in VARIANTS:
        plain, checkpointed, writes = [], [], []
        for _ in range(args.rounds):
            plain.append(run(data, variant, args.epochs, None))
            with tempfile.TemporaryDirectory() as folder:
                TimedStore.seconds = 0.0
                checkpointed.append(run(data, variant, args.epochs, folder))
                writes.append(TimedStore.seconds)
        off, on, write = (statistics.median(x) for x in (plain, checkpointed, writes))
        print(
            f"{variant[0]} d{variant[1]}: {args.epochs} epochs, without {off:.2f} s, "
            f"with {on:.2f} s, wall overhead {100 * (on - off) / off:+.1f}%, "
            f"checkpoint writes {write:.3f} s = {100 * write / on:.1f}% of the run"
        )


if __name__ == "__main__":
    main()
