from __future__ import annotations

import pytest
import torch

from cnn_lab.training.augment import BatchAugment, rotate90


def test_rotate90_turns_each_image_by_its_own_angle() -> None:
    batch = torch.arange(4 * 2 * 3 * 3, dtype=torch.float32).view(4, 2, 3, 3)
    out = rotate90(batch, torch.tensor([0, 1, 2, 3]))
    for i in range(4):
        torch.testing.assert_close(out[i], torch.rot90(batch[i], i, dims=(1, 2)))
    with pytest.raises(ValueError, match="need square images"):
        rotate90(torch.zeros(1, 1, 2, 3), torch.tensor([1]))


def test_augmentation_keeps_shape_and_content_and_repeats_with_the_seed() -> None:
    torch.manual_seed(0)
    batch = torch.randn(16, 3, 8, 8)
    augment = BatchAugment(hflip=True, vflip=True)
    first = augment(batch, torch.Generator().manual_seed(5))
    again = augment(batch, torch.Generator().manual_seed(5))
    torch.testing.assert_close(first, again)
    assert first.shape == batch.shape
    # rotations and flips only move pixels: each image keeps its sorted values
    torch.testing.assert_close(first.flatten(1).sort().values, batch.flatten(1).sort().values)
    assert not torch.equal(first, batch)


def test_random_resized_crop_zooms_in_and_the_full_crop_is_identity() -> None:
    batch = torch.randn(4, 3, 16, 16)
    full = BatchAugment(
        rotate90=False, random_resized_crop=True, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0)
    )
    torch.testing.assert_close(full(batch, torch.Generator().manual_seed(0)), batch)
    zoom = BatchAugment(rotate90=False, random_resized_crop=True, crop_scale=(0.2, 0.3))
    out = zoom(batch, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and not torch.allclose(out, batch)
    assert not BatchAugment(rotate90=False).active


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"crop_scale": (0.0, 1.0)}, "crop_scale must satisfy"),
        ({"crop_ratio": (2, 1)}, "crop_ratio"),
    ],
)
def test_bad_augmentation_settings_are_named(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchAugment(**options)
