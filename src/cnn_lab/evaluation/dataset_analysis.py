"""What a dataset looks like before anything trains on it: class balance per split,
sample images, channel statistics, and a t-SNE map of raw pixels (and, given a trained
model, of its penultimate features beside it, to show what training separated)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from cnn_lab.data.sources import DatasetBundle, LabelledImages  # noqa: E402
from cnn_lab.training.batching import DeviceBatches, Normalisation  # noqa: E402

logger = logging.getLogger(__name__)


@dataclass
class DatasetAnalysis:
    counts: pd.DataFrame  # one row per class, one column per split
    channel_stats: pd.DataFrame  # per channel mean and std of the training split, in [0, 1]
    figures: dict[str, Figure]


EXACT_TSNE_POINTS = 1000


def split_parts(bundle: DatasetBundle, split: dict[str, Any]) -> dict[str, LabelledImages]:
    """The named splits of ``bundle`` (``test: official`` is the source's own test set)."""
    pool = bundle.train
    parts = {}
    for name in ("train", "val", "test"):
        indices = split.get(name)
        if indices == "official":
            if bundle.test is not None:
                parts[name] = bundle.test
            continue
        if indices is None:
            continue
        index = np.asarray(indices, dtype=np.int64)
        parts[name] = LabelledImages(pool.images[index], pool.labels[index], pool.class_names)
    return parts


def class_counts(parts: dict[str, LabelledImages], class_names: list[str]) -> pd.DataFrame:
    counts = pd.DataFrame({"class": class_names})
    for name, part in parts.items():
        counts[name] = np.bincount(part.labels, minlength=len(class_names))
    return counts


def channel_statistics(images: np.ndarray) -> pd.DataFrame:
    """The numbers a Normalize transform needs; the engine uses the same computation."""
    norm = Normalisation.from_uint8(images)
    scaled_std = (images.astype(np.float64) / 255.0).std(axis=(0, 2, 3))
    return pd.DataFrame(
        {"channel": range(len(norm.mean)), "mean": norm.mean, "std": scaled_std.tolist()}
    )


def stratified_subsample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """About ``size`` indices, the same share from every class, so a rare class stays visible."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = max(1, size // max(len(classes), 1))
    picked = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in classes]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def tsne_embedding(points: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, max(1.0, (len(points) - 1) / 3))
    # Barnes-Hut only pays off for thousands of points: on the default 300 the exact
    # method took 4.8 s against 8-12 s here (O(n^2) memory: 8 MB at 1,000 points).
    method = "exact" if len(points) <= EXACT_TSNE_POINTS else "barnes_hut"
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, method=method)
    return tsne.fit_transform(points.astype(np.float32))


def penultimate_features(
    model: nn.Module,
    images: np.ndarray,
    normalisation: Normalisation,
    *,
    input_size: int | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """The input of the model's last Linear layer: the representation the classifier reads."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no Linear layer whose input could serve as features")
    captured: list[torch.Tensor] = []
    handle = linears[-1].register_forward_hook(
        lambda _module, inputs, _output: captured.append(inputs[0].detach().flatten(1).cpu())
    )
    device = next(model.parameters()).device
    batches = DeviceBatches(
        images,
        np.zeros(len(images), dtype=np.int64),
        batch_size=batch_size,
        device=device,
        normalisation=normalisation,
        input_size=input_size,
    )
    model.eval()
    try:
        with torch.inference_mode():
            for inputs, _ in batches:
                model(inputs)
    finally:
        handle.remove()
    return torch.cat(captured).numpy()


def _counts_figure(counts: pd.DataFrame) -> Figure:
    splits = [c for c in counts.columns if c != "class"]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(counts) * len(splits)), 3.5))
    width = 0.8 / max(len(splits), 1)
    x = np.arange(len(counts))
    for i, name in enumerate(splits):
        ax.bar(x + i * width, counts[name], width, label=name)
    ax.set_xticks(x + width * (len(splits) - 1) / 2, counts["class"], fontsize="small")
    ax.set_ylabel("images")
    ax.set_title("images per class and split")
    ax.legend()
    fig.tight_layout()
    return fig


def _samples_figure(part: LabelledImages, per_class: int, seed: int) -> Figure:
    rng = np.random.default_rng(seed)
    n_classes = part.num_classes
    fig, axes = plt.subplots(
        n_classes, per_class, figsize=(0.9 * per_class, 0.9 * n_classes), squeeze=False
    )
    for c, row in enumerate(axes):
        chosen = rng.permutation(np.flatnonzero(part.labels == c))[:per_class]
        for j, ax in enumerate(row):
            ax.axis("off")
            if j < len(chosen):
                image = part.images[chosen[j]].transpose(1, 2, 0)
                ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray")
        row[0].set_title(part.class_names[c], fontsize="x-small", loc="left")
    fig.suptitle("samples per class (training split)")
    return fig


def _tsne_figure(maps: dict[str, np.ndarray], labels: np.ndarray, names: list[str]) -> Figure:
    fig, axes = plt.subplots(1, len(maps), figsize=(4.5 * len(maps), 4.2), squeeze=False)
    for ax, (title, points) in zip(axes[0], maps.items(), strict=True):
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=6)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, _ = scatter.legend_elements()
    axes[0][-1].legend(handles, names[: len(handles)], fontsize="x-small", loc="best")
    fig.tight_layout()
    return fig


def analyse_dataset(
    bundle: DatasetBundle,
    split: dict[str, Any],
    *,
    subsample: int = 300,
    perplexity: float = 30.0,
    samples_per_class: int = 8,
    seed: int = 0,
    model: nn.Module | None = None,
    input_size: int | None = None,
) -> DatasetAnalysis:
    """Counts, channel statistics and figures of ``bundle`` under ``split``; with ``model``
    the t-SNE figure gains a panel of its penultimate features for the same images."""
    parts = split_parts(bundle, split)
    train = parts["train"]
    counts = class_counts(parts, bundle.train.class_names)
    index = stratified_subsample(train.labels, subsample, seed)
    images, labels = train.images[index], train.labels[index]
    maps = {"raw pixels": tsne_embedding(images.reshape(len(images), -1) / 255.0, perplexity, seed)}
    if model is not None:
        features = penultimate_features(
            model, images, Normalisation.from_uint8(train.images), input_size=input_size
        )
        if np.isfinite(features).all():
            maps["penultimate features (trained model)"] = tsne_embedding(
                features, perplexity, seed
            )
        else:  # a diverged model: there is nothing to embed, and the report names it
            logger.warning("penultimate features are not finite (diverged model): no t-SNE")
    figures = {
        "class_counts": _counts_figure(counts),
        "samples": _samples_figure(train, samples_per_class, seed),
        "tsne": _tsne_figure(maps, labels, bundle.train.class_names),
    }
    return DatasetAnalysis(counts, channel_statistics(train.images), figures)
