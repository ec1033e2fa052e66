"""Time of one epoch of He et al.'s ResNet-20 on 50,000 32x32 images, and of the paper recipe
(64k iterations, batch 128) it implies, through the study's own training path.

The recipe is read from ``conf/paper_he`` (SGD 0.1, momentum 0.9, weight decay 1e-4,
batch 128, milestones in iterations, crop + flip augmentation done batch-wise on the
device) and trained with ``training.recipe.train_model``: the code ``kedro run
--pipelines=cnn_depth --env=paper_he`` runs, validation pass and gradient-norm probe
included. Only the images are random uint8 (the time does not depend on what they show),
so the script needs no download.

The first epoch pays the one-off costs (cuDNN autotuning, ``compile``); the projection
uses the median of the later epochs:
``64,000 / iterations per epoch x steady epoch time + first-epoch extra``, with the
training part scaled to 50,000 images and the validation part to 5,000 when other sizes
are given.

    python benchmarks/resnet20_epoch.py [--device auto] [--train 50000] [--val 5000]
        [--epochs 3] [--precision auto] [--channels-last auto] [--compile off] [--threads 0]

On a CPU, ``--train 4096`` keeps it to minutes; the per-image time scales to 50,000.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from cnn_lab.data.sources import LabelledImages
from cnn_lab.models import build_model
from cnn_lab.training import Normalisation, PerformanceOptions
from cnn_lab.training.augment import crop_and_flip
from cnn_lab.training.recipe import Recipe, SplitData, train_model

PAPER_HE = Path(__file__).resolve().parents[1] / "conf" / "paper_he" / "parameters_cnn_depth.yml"
PAPER_ITERATIONS = 64_000
CLASSES = [str(k) for k in range(10)]


def paper_recipe(args: argparse.Namespace) -> tuple[Recipe, dict[str, Any]]:
    """The ``cifar`` group's recipe and augmentation from ``conf/paper_he``, with this
    run's performance options.

    Read with PyYAML rather than through Kedro's config loader and the study's schema, so
    the script runs where only PyTorch's stack is installed (a lent GPU machine);
    ``tests/test_benchmark_recipe.py`` checks it equals the study's own recipe.
    """
    raw = yaml.safe_load(PAPER_HE.read_text(encoding="utf-8"))["cnn_depth"]
    training = dict(raw["training"])
    training["milestones"] = tuple(training["milestones"])
    performance = PerformanceOptions(
        precision=args.precision, channels_last=args.channels_last, compile=args.compile
    )
    recipe = Recipe(**training, device=args.device, performance=performance)
    return dataclasses.replace(recipe, epochs=args.epochs), raw["data"]["augment"]


def random_split(count: int, seed: int) -> LabelledImages:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)
    return LabelledImages(images, rng.integers(0, 10, count), CLASSES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train", type=int, default=50_000)
    parser.add_argument("--val", type=int, default=5_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--compile", default="off", choices=("auto", "on", "off"))
    parser.add_argument("--threads", type=int, default=0, help="CPU threads; 0 = torch's")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is the warm-up")
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe, augment = paper_recipe(args)
    train = random_split(args.train, seed=0)
    data = SplitData(
        train=train,
        val=random_split(args.val, seed=1),
        test=None,
        normalisation=Normalisation.from_uint8(train.images),
    )
    trained = train_model(
        lambda: build_model("cifar_resnet", in_shape=(3, 32, 32), num_classes=10, depth=20),
        data,
        recipe,
        label="resnet20",
        augment=crop_and_flip(augment["crop_padding"], augment["flip"]),
    )
    epochs = trained.history.epochs
    steady = statistics.median(row["epoch_time"] for row in epochs[1:])
    steady_train = statistics.median(row["train_time"] for row in epochs[1:])
    per_epoch = math.ceil(args.train / recipe.batch_size)
    scaled = args.train != 50_000 or args.val != 5_000
    # Training scales with the training images, validation with the validation images.
    epoch_50k = steady_train * 50_000 / args.train + (steady - steady_train) * 5_000 / args.val
    paper_epochs = PAPER_ITERATIONS / math.ceil(50_000 / recipe.batch_size)
    first_extra = max(0.0, epochs[0]["epoch_time"] - steady)
    print("ran with " + ", ".join(f"{k}={v}" for k, v in trained.performance.items()))
    print(
        f"{args.train} training images ({per_epoch} iterations of {recipe.batch_size}), "
        f"{args.val} validation images, {len(epochs)} epochs"
    )
    print(f"  first epoch {epochs[0]['epoch_time']:.2f} s (warm-up included)")
    print(
        f"  later epochs, median: {steady:.2f} s ({steady_train:.2f} s training, "
        f"{args.train / steady_train:.0f} images/s)"
    )
    print(
        f"  one epoch on 50,000 images (+ validation on 5,000): {epoch_50k:.2f} s"
        + (" (scaled from the sizes above)" if scaled else "")
    )
    print(
        f"  paper recipe, {PAPER_ITERATIONS:,} iterations = {paper_epochs:.0f} epochs of 50,000: "
        f"{(paper_epochs * epoch_50k + first_extra) / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
