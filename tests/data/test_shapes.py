"""The generated shapes: boxes are the tight boxes of the object pixels, runs repeat."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_lab.data.shapes import SHAPES, generate_shapes, load_shapes


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
