"""The generated shapes: boxes are the tight boxes of the object pixels, runs repeat."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_lab.data.shapes import (
    ALL_SHAPES,
    SHAPES,
    SOURCE_SHAPES,
    check_classes,
    generate_shapes,
    load_shapes,
    source_task,
)


def test_boxes_are_tight_around_the_object_pixels() -> None:
    data = generate_shapes(40, image_size=32, seed=3, with_masks=True)
    assert data.masks is not None
    for image, mask, (x0, y0, x1, y1) in zip(
        data.images.images, data.masks, data.boxes, strict=True
    ):
        assert mask.any()
        ys, xs = np.nonzero(mask)
        assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
        # tight: the mask touches every side of its box
        assert xs.min() == x0 and xs.max() == x1 - 1 and ys.min() == y0 and ys.max() == y1 - 1
        # the object is drawn in one colour (plus noise) that differs from the background
        pixels = image[:, mask].astype(float)
        assert pixels.std(axis=1).max() < 40
        background = image[:, ~mask].astype(float).mean(axis=1)
        assert np.linalg.norm(pixels.mean(axis=1) - background) > 40


def test_classes_balanced_and_generation_repeats() -> None:
    a = generate_shapes(50, image_size=24, seed=1)
    b = generate_shapes(50, image_size=24, seed=1)
    np.testing.assert_array_equal(a.images.images, b.images.images)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert np.bincount(a.images.labels).tolist() == [10] * len(SHAPES)
    assert a.images.class_names == list(SHAPES)


def test_load_shapes_gives_independent_test_set() -> None:
    bundle, boxes = load_shapes(20, 10, image_size=24, classes=["circle", "cross"])
    assert bundle.train.images.shape == (20, 3, 24, 24) and bundle.test is not None
    assert len(boxes["train"]) == 20 and len(boxes["test"]) == 10
    assert not np.array_equal(bundle.train.images[:10], bundle.test.images)


def test_unknown_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown shape class"):
        generate_shapes(4, classes=["circle", "hexagon"])


def test_source_shapes_are_other_classes_and_differ_from_each_other() -> None:
    """The classes of the cam study's source task: none is a target class, each draws
    a mask of its own (no two alike), and they generate like the target's."""
    assert not set(SOURCE_SHAPES) & set(SHAPES)
    grid = (np.arange(32) + 0.5) / 32 * 2.0 - 1.0
    masks = {name: mask(grid[None, :], grid[:, None]) for name, mask in ALL_SHAPES.items()}
    names = list(masks)
    for i, a in enumerate(names):
        assert 0.2 < masks[a].mean() < 0.9, a
        for b in names[i + 1 :]:
            assert (masks[a] != masks[b]).mean() > 0.1, (a, b)
    data = generate_shapes(12, image_size=32, classes=list(SOURCE_SHAPES), seed=0)
    assert data.images.class_names == list(SOURCE_SHAPES)
    assert np.bincount(data.images.labels).tolist() == [2] * len(SOURCE_SHAPES)


def test_repeated_shape_classes_are_refused() -> None:
    assert check_classes(("circle", "cross")) == ["circle", "cross"]
    with pytest.raises(ValueError, match="shape classes must be distinct"):
        check_classes(["circle", "circle"])


def test_a_source_task_draws_its_own_images_and_splits_its_pool() -> None:
    drawing = {"image_size": 24, "scale": (0.3, 0.5), "noise": 4.0}
    bundle, split = source_task(30, 6, classes=["star", "frame"], seed=0, val_ratio=0.2, **drawing)
    target, _ = load_shapes(30, 6, classes=["star", "frame"], seed=0, **drawing)
    assert not np.array_equal(bundle.train.images, target.train.images)  # a seed of its own
    assert sorted(split["train"] + split["val"]) == list(range(30)) and len(split["val"]) == 6
    assert split["test"] == "official" and split["seed"] == 7_000_001  # the generated test set
