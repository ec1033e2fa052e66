"""Signal scale at initialisation, layer by layer, and the residual MLP's depth check.

Figure (``docs/img/activation_scale_at_init.png``): for ``mlp``, ``mlp_bn``, ``resmlp``
(top row), ``cnn``, ``rescnn`` and, for comparison, the former residual MLP block
``x + ReLU(W x + b)`` with PyTorch's default init (bottom row) at depths 4-64, the
standard deviation of each weight layer's output representation
(``evaluation.activations.activation_scales``) on 512 normalised digits, at init,
seed 0. A family whose curve climbs geometrically starts training with huge logits.

``--train`` then trains ``resmlp`` at depths 32 and 64 for seeds 0, 1, 2 with the depth
study's default ``mlp`` group recipe (conf/base/parameters_cnn_depth.yml: Adam 1e-3,
20 epochs, batch 64, width 128) on the digits split the study uses, and prints each
test accuracy and the first epoch's training loss; ``--families`` adds others.

    python benchmarks/activation_scale.py [--out docs/img/activation_scale_at_init.png]
        [--train] [--families resmlp,mlp_bn] [--depths 32,64] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn

from cnn_lab.data.sources import load_digits_images
from cnn_lab.data.splits import stratified_split
from cnn_lab.evaluation.activations import activation_scales
from cnn_lab.models import build_model
from cnn_lab.pipelines.cnn_depth.nodes import group_recipe
from cnn_lab.pipelines.cnn_depth.pipeline import STUDY
from cnn_lab.training.batching import Normalisation, resize
from cnn_lab.training.recipe import SplitData, train_model

ROOT = Path(__file__).resolve().parents[1]
MLP_FAMILIES = ("mlp", "mlp_bn", "resmlp")
CNN_FAMILIES = ("cnn", "rescnn")
DEPTHS = (4, 8, 16, 32, 64)


class FormerResidualLinear(nn.Module):
    """The block resmlp had before: only non-negative values are added, so the signal grows."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.relu(self.linear(x))


def former_resmlp(depth: int, in_features: int = 64, width: int = 128) -> nn.Module:
    blocks = [FormerResidualLinear(width) for _ in range(depth - 2)]
    return nn.Sequential(
        nn.Flatten(), nn.Linear(in_features, width), nn.ReLU(), *blocks, nn.Linear(width, 10)
    )


def default_config() -> dict:
    raw = yaml.safe_load((ROOT / "conf/base/parameters_cnn_depth.yml").read_text())
    return STUDY.validate(raw["cnn_depth"])


def scales(inputs: torch.Tensor) -> dict[tuple[str, int], list[float]]:
    out = {}
    for family in MLP_FAMILIES + CNN_FAMILIES:
        mlp = family in MLP_FAMILIES
        x = inputs if mlp else resize(inputs, 16)
        for depth in DEPTHS:
            torch.manual_seed(0)
            options = {"width": 128} if mlp else {"width": 16}
            model = build_model(
                family, in_shape=tuple(x.shape[1:]), num_classes=10, depth=depth, **options
            )
            out[family, depth] = activation_scales(model, x)
    for depth in DEPTHS:
        torch.manual_seed(0)
        out["former resmlp", depth] = activation_scales(former_resmlp(depth), inputs)
    return out


def plot(values: dict[tuple[str, int], list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for row, families in enumerate((MLP_FAMILIES, (*CNN_FAMILIES, "former resmlp"))):
        for col, family in enumerate(families):
            ax = axes[row][col]
            if family != "former resmlp":  # its scale runs to 1e4: its own axis
                ax.sharey(axes[0][0])
            for depth in DEPTHS:
                ys = values[family, depth]
                ax.plot(range(1, len(ys) + 1), ys, marker=".", label=f"depth {depth}")
            ax.set_yscale("log")
            ax.set_title("former resmlp: x + ReLU(Wx+b)" if family == "former resmlp" else family)
            ax.set_xlabel("weight layer")
            ax.grid(True, which="both", alpha=0.3)
        axes[row][0].set_ylabel("std of the representation after the layer")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Activation scale at initialisation (digits, seed 0; last point = logits)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def train(families: list[str], depths: list[int]) -> None:
    config = default_config()
    bundle = load_digits_images()
    split = stratified_split(
        bundle.train.labels,
        val_ratio=config["data"]["val_ratio"],
        test_ratio=config["data"]["test_ratio"],
        seed=config["seed"],
    )
    data = SplitData.from_bundle(bundle, split)
    width = config["groups"]["mlp"]["model"]["width"]
    for family in families:
        for depth in depths:
            for seed in (0, 1, 2):
                recipe = group_recipe(config, "mlp", seed)
                start = time.perf_counter()
                trained = train_model(
                    lambda family=family, depth=depth: build_model(
                        family, in_shape=(1, 8, 8), num_classes=10, depth=depth, width=width
                    ),
                    data,
                    recipe,
                    label=f"{family}_d{depth}_s{seed}",
                )
                print(
                    f"{family} depth {depth} seed {seed}: test accuracy "
                    f"{trained.test['accuracy']:.4f}, first-epoch train loss "
                    f"{trained.history.epochs[0]['train_loss']:.3f} "
                    f"({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/img/activation_scale_at_init.png")
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--families", default="resmlp")
    parser.add_argument("--depths", default="32,64")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundle = load_digits_images()
    images = bundle.train.images[:512]
    inputs = Normalisation.from_uint8(images).apply(torch.from_numpy(images))
    values = scales(inputs)
    for (family, depth), ys in values.items():
        print(
            f"{family:13s} depth {depth:2d}: first {ys[0]:.3g}, max {max(ys):.3g}, "
            f"logits {ys[-1]:.3g}"
        )
    plot(values, args.out)
    if args.train:
        train(args.families.split(","), [int(d) for d in args.depths.split(",")])


if __name__ == "__main__":
    main()
