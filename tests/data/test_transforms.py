from __future__ import annotations

import numpy as np
import pytest

from cnn_lab.data.transforms import resize_images


def test_resize_keeps_layout_dtype_and_constant_images() -> None:
    images = np.full((5, 1, 8, 8), 200, dtype=np.uint8)
    images[1] = 0
    out = resize_images(images, 28, batch_size=2)
    assert out.shape == (5, 1, 28, 28) and out.dtype == np.uint8
    assert (out[0] == 200).all() and (out[1] == 0).all()


def test_resize_to_the_same_size_is_a_no_op_and_bad_input_fails() -> None:
    images = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    assert resize_images(images, (4, 4)) is images
    with pytest.raises(ValueError, match="uint8"):
        resize_images(images.astype(np.float32), 8)
