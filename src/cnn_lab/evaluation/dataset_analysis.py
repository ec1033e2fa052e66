"""What a dataset looks like before anything trains on it: class balance per split,
sample images, channel statistics, and a t-SNE map of raw pixels (and, given a trained
model, of its penultimate features beside it, to show what training separated).

The analysis reads an :class:`ImageSplits` view: labels per split and a reader of
training images. A :class:`DatasetBundle` held in memory and a decoded-image store on
disk (:func:`store_splits`) both give one, so neither is copied whole to be analysed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from cnn_lab.data.image_cache import BatchedImages, DecodedImages  # noqa: E402
from cnn_lab.data.sources import DatasetBundle, LabelledImages  # noqa: E402
from cnn_lab.evaluation.figure_layout import panel_grid  # noqa: E402
from cnn_lab.training.batching import DeviceBatches, Normalisation  # noqa: E402

logger = logging.getLogger(__name__)


@dataclass
class DatasetAnalysis:
    counts: pd.DataFrame  # one row per class, one column per split
    channel_stats: pd.DataFrame  # per channel mean and std of the training split, in [0, 1]
    figures: dict[str, Figure]


EXACT_TSNE_POINTS = 1000


SPLITS = ("train", "val", "test")
# Positions in the training split -> uint8 N x C x H x W images, in that order.
ImageReader = Callable[[np.ndarray], np.ndarray]


@dataclass
class ImageSplits:
    """What the analysis needs of a dataset: its class names, the labels of each split
    and a reader of training images (only a subsample and chunks are ever read)."""

    name: str
    class_names: list[str]
    labels: dict[str, np.ndarray]  # split name -> labels, in the split's order
    read_train: ImageReader

    @property
    def train_size(self) -> int:
        return len(self.labels["train"])


def bundle_splits(bundle: DatasetBundle, split: dict[str, Any]) -> ImageSplits:
    """The view of an in-memory bundle under ``split`` (``test: official`` included)."""
    parts = split_parts(bundle, split)
    labels = {name: part.labels for name, part in parts.items()}
    return ImageSplits(
        bundle.name, bundle.train.class_names, labels, parts["train"].images.__getitem__
    )


def _batch_images(images: BatchedImages, positions: np.ndarray) -> np.ndarray:
    return images[positions][0].numpy()


def store_splits(
    name: str,
    store: DecodedImages,
    labels: Sequence[int] | np.ndarray,
    split: dict[str, Any],
    class_names: list[str],
) -> ImageSplits:
    """The view of a decoded-image store: ``labels`` per store row, ``split`` row indices."""
    labels = np.asarray(labels, dtype=np.int64)
    rows = {part: np.asarray(split[part], dtype=np.int64) for part in SPLITS if part in split}
    train = BatchedImages(store, rows["train"], labels[rows["train"]])
    return ImageSplits(
        name,
        list(class_names),
        {part: labels[index] for part, index in rows.items()},
        partial(_batch_images, train),
    )


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


def class_counts(labels: dict[str, np.ndarray], class_names: list[str]) -> pd.DataFrame:
    counts = pd.DataFrame({"class": class_names})
    for name, part in labels.items():
        counts[name] = np.bincount(part, minlength=len(class_names))
    return counts


def channel_statistics(read: ImageReader, size: int, chunk: int = 512) -> pd.DataFrame:
    """Per-channel mean and (population) std of ``size`` images in [0, 1] units: the
    numbers a Normalize transform needs. Read a chunk at a time and merged with Chan et
    al.'s pairwise update, so a split on disk is never held whole and a constant channel
    gets a std of exactly 0."""
    count, mean, m2 = 0, None, None
    for start in range(0, size, chunk):
        part = read(np.arange(start, min(start + chunk, size))).astype(np.float64) / 255.0
        n = part.shape[0] * part.shape[2] * part.shape[3]
        part_mean = part.mean(axis=(0, 2, 3))
        part_m2 = np.square(part - part_mean[None, :, None, None]).sum(axis=(0, 2, 3))
        if mean is None:
            count, mean, m2 = n, part_mean, part_m2
            continue
        delta = part_mean - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = m2 + part_m2 + np.square(delta) * count * n / total
        count = total
    if mean is None:
        raise ValueError("cannot compute channel statistics of an empty training split")
    std = np.sqrt(m2 / count)
    return pd.DataFrame({"channel": range(len(mean)), "mean": mean, "std": std})


def normalisation_of(stats: pd.DataFrame) -> Normalisation:
    """The training split's normalisation, as the engine applies it (a flat channel's
    std is taken as 1, so it is not divided by 0)."""
    std = [s if s > 0 else 1.0 for s in stats["std"]]
    return Normalisation(tuple(float(m) for m in stats["mean"]), tuple(float(s) for s in std))


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
    fig, axes = panel_grid(1, 1, width=max(5.0, 0.5 * len(counts) * len(splits)), height=3.5)
    ax = axes[0][0]
    width = 0.8 / max(len(splits), 1)
    x = np.arange(len(counts))
    for i, name in enumerate(splits):
        ax.bar(x + i * width, counts[name], width, label=name)
    # Past a dozen classes the names no longer fit side by side on the page: upright.
    rotation = 90 if len(counts) > 12 else 0
    ax.set_xticks(
        x + width * (len(splits) - 1) / 2, counts["class"], fontsize="small", rotation=rotation
    )
    ax.set_ylabel("images")
    ax.set_title("images per class and split")
    ax.legend()
    return fig


def _samples_figure(data: ImageSplits, per_class: int, seed: int) -> Figure:
    rng = np.random.default_rng(seed)
    labels = data.labels["train"]
    n_classes = len(data.class_names)
    fig, axes = panel_grid(n_classes, per_class, width=0.9, height=0.9, layout=None)
    for c, row in enumerate(axes):
        chosen = rng.permutation(np.flatnonzero(labels == c))[:per_class]
        images = data.read_train(chosen) if len(chosen) else []
        for j, ax in enumerate(row):
            ax.axis("off")
            if j < len(chosen):
                image = images[j].transpose(1, 2, 0)
                ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray")
        row[0].set_title(data.class_names[c], fontsize="small", loc="left")
    fig.suptitle("samples per class (training split)")
    return fig


def _tsne_figure(maps: dict[str, np.ndarray], labels: np.ndarray, names: list[str]) -> Figure:
    fig, axes = panel_grid(1, len(maps), width=4.5, height=4.2)
    for ax, (title, points) in zip(axes[0], maps.items(), strict=True):
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=6)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, _ = scatter.legend_elements()
    axes[0][-1].legend(handles, names[: len(handles)], fontsize="small", loc="best")
    return fig


def analyse_dataset(
    dataset: DatasetBundle | ImageSplits,
    split: dict[str, Any] | None = None,
    *,
    subsample: int = 300,
    perplexity: float = 30.0,
    samples_per_class: int = 8,
    seed: int = 0,
    model: nn.Module | None = None,
    input_size: int | None = None,
    normalisation: Normalisation | None = None,
    model_label: str = "trained model",
) -> DatasetAnalysis:
    """Counts, channel statistics and figures of ``dataset`` (a bundle under ``split``, or
    a view that carries its splits); with ``model`` the t-SNE figure gains a panel of its
    penultimate features for the same images, normalised as the model was trained
    (``normalisation``; by default the training split's statistics)."""
    if isinstance(dataset, DatasetBundle):
        if split is None:
            raise ValueError("a DatasetBundle needs its split to be analysed")
        dataset = bundle_splits(dataset, split)
    counts = class_counts(dataset.labels, dataset.class_names)
    stats = channel_statistics(dataset.read_train, dataset.train_size)
    train_labels = dataset.labels["train"]
    index = stratified_subsample(train_labels, subsample, seed)
    images, labels = dataset.read_train(index), train_labels[index]
    maps = {"raw pixels": tsne_embedding(images.reshape(len(images), -1) / 255.0, perplexity, seed)}
    if model is not None:
        features = penultimate_features(
            model, images, normalisation or normalisation_of(stats), input_size=input_size
        )
        if np.isfinite(features).all():
            maps[f"penultimate features ({model_label})"] = tsne_embedding(
                features, perplexity, seed
            )
        else:  # a diverged model: there is nothing to embed, and the report names it
            logger.warning("penultimate features are not finite (diverged model): no t-SNE")
    figures = {
        "class_counts": _counts_figure(counts),
        "samples": _samples_figure(dataset, samples_per_class, seed),
        "tsne": _tsne_figure(maps, labels, dataset.class_names),
    }
    return DatasetAnalysis(counts, stats, figures)
