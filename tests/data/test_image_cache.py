"""Decode-once cache, corrupt-file skip, train-split statistics and DataLoader batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cnn_lab.data.image_cache import BatchedImages, channel_statistics, decode_all
from cnn_lab.training.batching import Normalisation
from cnn_lab.training.loader import LoaderBatches
from tests.pipelines.artworks.fake_download import jpeg_bytes


def _files(folder: Path, n: int = 5, corrupt_at: int | None = 2) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        data = jpeg_bytes((40 * i, 100, 200), i)
        if i == corrupt_at:
            data = data[: len(data) // 2]  # truncated mid-scan, as an interrupted download
        path = folder / f"img_{i}.jpg"
        path.write_bytes(data)
        paths.append(path)
    (folder / "empty.jpg").write_bytes(b"")
    return [*paths, folder / "empty.jpg"]


@pytest.mark.parametrize("cache", [True, False])
def test_unreadable_files_are_listed_and_skipped(tmp_path: Path, cache: bool) -> None:
    paths = _files(tmp_path / "img")
    store, kept, unreadable = decode_all(
        paths, 16, cache_dir=tmp_path / "cache" if cache else None, workers=2
    )
    assert kept == [0, 1, 3, 4]
    assert sorted(unreadable) == sorted(str(p) for p in (paths[2], paths[5]))
    assert all(isinstance(e, str) and e for e in unreadable.values())
    pixels = store.read([0, 3])
    assert pixels.shape == (2, 3, 16, 16) and pixels.dtype == np.uint8
    assert (store.cache_file is not None) == cache


def test_the_cache_is_reused_and_invalidated_by_size_or_files(tmp_path: Path) -> None:
    paths = _files(tmp_path / "img", corrupt_at=None)
    first, _, _ = decode_all(paths, 16, cache_dir=tmp_path / "cache")
    stamp = first.cache_file.stat().st_mtime_ns
    again, kept, unreadable = decode_all(paths, 16, cache_dir=tmp_path / "cache")
    assert again.cache_file == first.cache_file and again.cache_file.stat().st_mtime_ns == stamp
    assert kept == [0, 1, 2, 3, 4] and list(unreadable) == [str(paths[5])]
    np.testing.assert_array_equal(again.read([1, 4]), first.read([1, 4]))
    bigger, _, _ = decode_all(paths, 24, cache_dir=tmp_path / "cache")
    fewer, _, _ = decode_all(paths[:3], 16, cache_dir=tmp_path / "cache")
    assert len({first.cache_file, bigger.cache_file, fewer.cache_file}) == 3
    assert not list((tmp_path / "cache").glob("*.partial.npy"))


def test_cached_pixels_equal_direct_decoding(tmp_path: Path) -> None:
    paths = _files(tmp_path / "img", corrupt_at=None)[:5]
    cached, _, _ = decode_all(paths, 16, cache_dir=tmp_path / "cache")
    direct, _, _ = decode_all(paths, 16, cache_dir=None)
    np.testing.assert_array_equal(cached.read(range(5)), direct.read(range(5)))


def test_channel_statistics_match_numpy_on_the_chosen_rows(tmp_path: Path) -> None:
    paths = _files(tmp_path / "img", corrupt_at=None)[:5]
    store, _, _ = decode_all(paths, 16, cache_dir=tmp_path / "cache")
    mean, std = channel_statistics(store, [4, 0, 2], chunk=2)
    expected = Normalisation.from_uint8(store.read([0, 2, 4]))
    np.testing.assert_allclose(mean, expected.mean, rtol=1e-9)
    np.testing.assert_allclose(std, expected.std, rtol=1e-6)
    with pytest.raises(ValueError, match="empty split"):
        channel_statistics(store, [])


def test_too_small_image_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="image size must be at least 8 pixels, got 4"):
        decode_all([], 4, cache_dir=None)


def test_loader_batches_cover_the_split_normalised_on_the_device(tmp_path: Path) -> None:
    paths = _files(tmp_path / "img", n=7, corrupt_at=None)[:7]
    store, _, _ = decode_all(paths, 16, cache_dir=tmp_path / "cache")
    rows = [6, 1, 3, 0, 5]
    norm = Normalisation((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    batches = LoaderBatches(
        BatchedImages(store, rows, [60, 10, 30, 0, 50]),
        batch_size=2,
        device=torch.device("cpu"),
        normalisation=norm,
    )
    assert len(batches) == 3 and batches.num_samples == 5
    inputs, labels = zip(*batches, strict=True)
    assert torch.cat(labels).tolist() == [60, 10, 30, 0, 50]
    expected = (torch.from_numpy(store.read(rows)).float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(torch.cat(inputs), expected)

    shuffled = LoaderBatches(
        BatchedImages(store, rows, [60, 10, 30, 0, 50]),
        batch_size=2,
        device=torch.device("cpu"),
        normalisation=norm,
        shuffle=True,
        seed=3,
    )
    epoch = torch.cat([labels for _, labels in shuffled]).tolist()
    assert sorted(epoch) == [0, 10, 30, 50, 60]
    with pytest.raises(ValueError, match="workers must be >= 0"):
        LoaderBatches(
            BatchedImages(store, rows, rows),
            batch_size=2,
            device=torch.device("cpu"),
            normalisation=norm,
            workers=-1,
        )


def test_decode_index_keeps_readable_rows_and_warns_about_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import pandas as pd

    from cnn_lab.data.artworks import decode_index

    paths = _files(tmp_path / "img")
    index = pd.DataFrame({"path": [p.relative_to(tmp_path).as_posix() for p in paths]})
    data = {"root": str(tmp_path), "image_size": 16, "cache": False, "cache_dir": "", "workers": 1}
    with caplog.at_level("WARNING", logger="cnn_lab.data.artworks"):
        images, report = decode_index(index, data)
    assert list(images["path"]) == [index["path"][i] for i in (0, 1, 3, 4)]
    assert (images["cache_row"] == -1).all()
    assert (report["readable"], report["unreadable_count"]) == (4, 2)
    assert "2 unreadable image(s) skipped" in caplog.text and "img_2.jpg" in caplog.text
