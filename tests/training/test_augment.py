"""Batch-wise augmentation, resizing and the per-iteration schedule of the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnn_lab.training.augment import crop_and_flip, random_crop, random_flip
from cnn_lab.training.batching import DeviceBatches, Normalisation
from cnn_lab.training.engine import fit
from cnn_lab.training.optim import build_optimizer, build_scheduler


def test_random_crop_is_a_shifted_window_of_the_padded_batch() -> None:
    batch = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6) + 1
    generator = torch.Generator().manual_seed(1)
    cropped = random_crop(batch, 2, generator)
    offsets = torch.randint(0, 5, (2, 2), generator=torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(batch, (2, 2, 2, 2))
    for i in range(2):
        top, left = int(offsets[0, i]), int(offsets[1, i])
        assert torch.equal(cropped[i], padded[i, :, top : top + 6, left : left + 6])
    assert cropped.shape == batch.shape


def test_random_flip_mirrors_some_samples_and_keeps_others() -> None:
    batch = torch.randn(64, 1, 4, 4)
    flipped = random_flip(batch, torch.Generator().manual_seed(0))
    mirrored = [torch.equal(f, b.flip(2)) for f, b in zip(flipped, batch, strict=True)]
    kept = [torch.equal(f, b) for f, b in zip(flipped, batch, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 10 < sum(mirrored) < 54


def test_augmentation_repeats_with_the_batch_seed() -> None:
    images = np.random.default_rng(0).integers(0, 256, (40, 3, 8, 8), dtype=np.uint8)
    labels = np.arange(40) % 10

    def first_batches(seed: int) -> list[torch.Tensor]:
        batches = DeviceBatches(
            images,
            labels,
            batch_size=16,
            device=torch.device("cpu"),
            normalisation=Normalisation.from_uint8(images),
            shuffle=True,
            seed=seed,
            augment=crop_and_flip(4, True),
            input_size=12,
        )
        return [x for x, _ in batches]

    a, b, c = first_batches(3), first_batches(3), first_batches(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert a[0].shape == (16, 3, 12, 12)  # resized on the device before the crop


def test_negative_crop_padding_is_refused() -> None:
    with pytest.raises(ValueError, match="crop padding must be non-negative, got -1"):
        crop_and_flip(-1)


def test_iteration_schedule_with_warmup_and_max_steps() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    x, y = torch.randn(12, 4), torch.randint(0, 2, (12,))
    batches = [(x[i : i + 4], y[i : i + 4]) for i in range(0, 12, 4)]  # 3 per epoch
    optimizer = build_optimizer("sgd", model.parameters(), lr=0.1)
    scheduler = build_scheduler(
        "multistep", optimizer, epochs=10, milestones=[5], warmup_steps=2, warmup_lr=0.01
    )
    history = fit(
        model,
        batches,
        optimizer=optimizer,
        epochs=10,
        scheduler=scheduler,
        scheduler_interval="iteration",
        max_steps=7,
    )
    # lr logged at each epoch start: step 0 (warm-up), step 3 (0.1), step 6 (past 5: 0.01)
    assert history.column("lr") == pytest.approx([0.01, 0.1, 0.01])
    assert history.steps == 7 and history.stopped_epoch == 3


def test_epoch_schedule_is_unchanged() -> None:
    model = torch.nn.Linear(4, 2)
    batches = [(torch.randn(4, 4), torch.randint(0, 2, (4,)))] * 3
    optimizer = build_optimizer("adam", model.parameters(), lr=0.1)
    scheduler = build_scheduler("step", optimizer, epochs=3, step_size=1, gamma=0.5)
    history = fit(model, batches, optimizer=optimizer, epochs=3, scheduler=scheduler)
    assert history.column("lr") == pytest.approx([0.1, 0.05, 0.025])
    assert history.steps == 9 and history.stopped_epoch is None


def test_bad_interval_and_warmup_are_refused() -> None:
    model = torch.nn.Linear(4, 2)
    optimizer = build_optimizer("sgd", model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="scheduler_interval must be 'epoch' or 'iteration'"):
        fit(model, [], optimizer=optimizer, epochs=1, scheduler_interval="batch")
    with pytest.raises(ValueError, match="warmup_steps=3 needs a positive warmup_lr"):
        build_scheduler("none", optimizer, epochs=1, warmup_steps=3)
