"""Generated shape images with known object boxes: a dataset where localisation is measurable.

Each image holds one object of one shape class at a random position, size and colour on a
smooth random texture with pixel noise. The box is the tight box of the object's pixels, so
a CAM's box can be scored against it. Generation is deterministic for a seed and needs no
download, which makes it the offline default of the ``cam`` study.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnn_lab.data.sources import DatasetBundle, LabelledImages

Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _circle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u**2 + v**2 <= 1.0


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # apex at the top (v = -1), base at the bottom (v = 1)
    return (v <= 1.0) & (np.abs(u) <= (v + 1.0) / 2.0)


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    arm = 0.33
    inside = (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    return inside & ((np.abs(u) <= arm) | (np.abs(v) <= arm))


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r2 = u**2 + v**2
    return (r2 <= 1.0) & (r2 >= 0.45**2)


def _diamond(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.abs(u) + np.abs(v) <= 1.0


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # five points: the radius swings between 0.45 and 1 with the angle
    angle, radius = np.arctan2(u, -v), np.hypot(u, v)
    swing = np.abs(((angle * 5 / (2 * np.pi)) % 1.0) - 0.5) * 2.0  # 1 at a point, 0 between
    return radius <= 0.45 + 0.55 * swing


def _ellipse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u**2 + (v / 0.5) ** 2 <= 1.0


def _semicircle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u**2 + v**2 <= 1.0) & (v >= 0.0)


def _hourglass(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (np.abs(v) <= 1.0) & (np.abs(u) <= np.abs(v))


def _frame(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    outer = (np.abs(u) <= 0.9) & (np.abs(v) <= 0.9)
    return outer & ~((np.abs(u) <= 0.5) & (np.abs(v) <= 0.5))


# The study's target classes; a default ``generate_shapes`` call draws these five.
SHAPES: dict[str, Mask] = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "cross": _cross,
    "ring": _ring,
}
# Other classes, for a source task that shares no class with the target (the offline
# stand-in for ImageNet pretraining in the ``cam`` study).
SOURCE_SHAPES: dict[str, Mask] = {
    "diamond": _diamond,
    "star": _star,
    "ellipse": _ellipse,
    "semicircle": _semicircle,
    "hourglass": _hourglass,
    "frame": _frame,
}
ALL_SHAPES: dict[str, Mask] = {**SHAPES, **SOURCE_SHAPES}


@dataclass
class ShapeImages:
    """Images, labels and the (x0, y0, x1, y1) box of each object (x1, y1 exclusive)."""

    images: LabelledImages
    boxes: np.ndarray  # int64, N x 4
    masks: np.ndarray | None = None  # bool, N x H x W, only when asked for


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random field in [0, 1]: coarse noise upsampled, so it has blobs and edges
    a network could mistake for objects, unlike a flat background."""
    from scipy import ndimage

    cells = int(rng.integers(3, 7))
    coarse = rng.random((cells, cells))
    field = ndimage.zoom(coarse, size / cells, order=1, mode="nearest")[:size, :size]
    return np.clip(field, 0.0, 1.0)


def _object_colour(rng: np.random.Generator, background: Sequence[np.ndarray]) -> np.ndarray:
    """A colour far (in RGB distance) from both background colours, so the object is visible."""
    for _ in range(100):
        colour = rng.integers(0, 256, 3).astype(np.float64)
        if all(np.linalg.norm(colour - b) > 110 for b in background):
            return colour
    return 255.0 - np.mean(background, axis=0)


def render_scene(
    rng: np.random.Generator,
    shape: str,
    image_size: int,
    scale: tuple[float, float],
    noise: float,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """One H x W x 3 uint8 image with a ``shape`` object, its mask and its tight box."""
    c1, c2 = rng.integers(0, 256, 3).astype(np.float64), rng.integers(0, 256, 3).astype(np.float64)
    t = _texture(rng, image_size)[..., None]
    image = c1 * (1.0 - t) + c2 * t

    side = int(round(rng.uniform(*scale) * image_size))
    side = max(4, min(side, image_size))
    x0 = int(rng.integers(0, image_size - side + 1))
    y0 = int(rng.integers(0, image_size - side + 1))
    grid = (np.arange(side) + 0.5) / side * 2.0 - 1.0  # pixel centres in [-1, 1]
    local = ALL_SHAPES[shape](grid[None, :], grid[:, None])
    mask = np.zeros((image_size, image_size), dtype=bool)
    mask[y0 : y0 + side, x0 : x0 + side] = local
    image[mask] = _object_colour(rng, (c1, c2))

    image += rng.normal(0.0, noise, image.shape)
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask, box


def check_classes(classes: Sequence[str]) -> list[str]:
    """``classes`` as a list when each is a known shape and none repeats."""
    unknown = [c for c in classes if c not in ALL_SHAPES]
    if unknown:
        raise ValueError(f"unknown shape class(es) {unknown}; allowed: {', '.join(ALL_SHAPES)}")
    if len(set(classes)) != len(classes):
        raise ValueError("shape classes must be distinct")
    return list(classes)


def generate_shapes(
    count: int,
    *,
    image_size: int = 64,
    classes: Sequence[str] = tuple(SHAPES),
    scale: tuple[float, float] = (0.25, 0.55),
    noise: float = 8.0,
    seed: int = 0,
    with_masks: bool = False,
) -> ShapeImages:
    """``count`` images, classes balanced (cycled, then shuffled), deterministic for ``seed``."""
    check_classes(classes)
    if not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % len(classes)).astype(np.int64)
    images = np.empty((count, 3, image_size, image_size), dtype=np.uint8)
    boxes = np.empty((count, 4), dtype=np.int64)
    masks = np.empty((count, image_size, image_size), dtype=bool) if with_masks else None
    for i, label in enumerate(labels):
        image, mask, box = render_scene(rng, classes[label], image_size, scale, noise)
        images[i] = image.transpose(2, 0, 1)
        boxes[i] = box
        if masks is not None:
            masks[i] = mask
    return ShapeImages(LabelledImages(images, labels, list(classes)), boxes, masks)


def load_shapes(
    train_size: int,
    test_size: int,
    *,
    image_size: int = 64,
    classes: Sequence[str] = tuple(SHAPES),
    scale: tuple[float, float] = (0.25, 0.55),
    noise: float = 8.0,
    seed: int = 0,
) -> tuple[DatasetBundle, dict[str, np.ndarray]]:
    """A training pool and an official test set (independent seeds) with their boxes."""
    common = {"image_size": image_size, "classes": classes, "scale": scale, "noise": noise}
    train = generate_shapes(train_size, seed=seed, **common)
    test = generate_shapes(test_size, seed=seed + 1_000_003, **common)
    bundle = DatasetBundle("shapes", train.images, test.images)
    return bundle, {"train": train.boxes, "test": test.boxes}


# A source task's images are drawn with their own seed, apart from the target's.
SOURCE_SEED_OFFSET = 7_000_001


def source_task(
    train_size: int,
    test_size: int,
    *,
    classes: Sequence[str],
    seed: int,
    val_ratio: float,
    **drawing: Any,
) -> tuple[DatasetBundle, dict[str, Any]]:
    """A pretraining source: shapes of other ``classes`` drawn as the target's (``drawing``:
    image size, scale, noise), with their own seed (``seed`` + :data:`SOURCE_SEED_OFFSET`)
    and a stratified train/val split of the pool; the test set is the generated one."""
    from cnn_lab.data.splits import stratified_split

    seed += SOURCE_SEED_OFFSET
    bundle, _ = load_shapes(train_size, test_size, classes=classes, seed=seed, **drawing)
    split = stratified_split(bundle.train.labels, val_ratio=val_ratio, seed=seed, test_ratio=None)
    return bundle, split
