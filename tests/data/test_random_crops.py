from __future__ import annotations

import torch

from cnn_lab.data.random_crops import RandomCrops


def test_crops_have_the_size_and_repeat_for_a_seed() -> None:
    batch = torch.arange(2 * 3 * 20 * 20, dtype=torch.float32).view(2, 3, 20, 20)
    crops = RandomCrops(8, (0.3, 0.6))
    a = crops(batch, torch.Generator().manual_seed(0))
    b = crops(batch, torch.Generator().manual_seed(0))
    assert a.shape == (2, 3, 8, 8)
    torch.testing.assert_close(a, b)
    assert a.min() >= batch.min() and a.max() <= batch.max()


def test_full_crop_without_flip_is_identity() -> None:
    batch = torch.rand(3, 1, 6, 6)
    same = RandomCrops(6, (1.0, 1.0), ratio=(1.0, 1.0), flip=False)(batch)
    torch.testing.assert_close(same, batch, atol=1e-5, rtol=0)
    flipped = RandomCrops(None, flip=True)(batch, torch.Generator().manual_seed(1))
    for original, out in zip(batch, flipped, strict=True):
        assert torch.equal(out, original) or torch.equal(out, original.flip(-1))
