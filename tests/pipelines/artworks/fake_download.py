"""A tiny copy of the Kaggle "Best Artworks of All Time" download, in the real layout,
with the real traps: a mis-encoded folder name and a truncated JPEG."""

from __future__ import annotations

import io
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

COLUMNS = ["id", "name", "years", "genre", "nationality", "bio", "wikipedia", "paintings"]
# Each artist paints in one colour, so even one epoch can learn something.
ARTISTS = {
    "Vincent van Gogh": (230, 190, 40),
    "Albrecht Dürer": (60, 60, 60),
    "Frida Kahlo": (200, 40, 60),
}


def mis_encoded(name: str) -> str:
    """The real download's bug: NFD UTF-8 bytes read as code page 437 ("Du╠êrer")."""
    return unicodedata.normalize("NFD", name).encode("utf-8").decode("cp437")


def folder_name(name: str) -> str:
    return name.replace(" ", "_")


def jpeg_bytes(colour: tuple[int, int, int], seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(
        np.array(colour)[None, None, :] + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255
    ).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_artists_csv(root: Path, names: list[str], paintings: dict[str, int]) -> None:
    rows = [
        {
            "id": i,
            "name": name,
            "years": "1800 - 1900",
            "genre": "Painting",
            "nationality": "Unknown",
            "bio": f"{name} painted, in one colour, for tests.",
            "wikipedia": f"http://en.wikipedia.org/wiki/{folder_name(name)}",
            "paintings": paintings.get(name, 0),
        }
        for i, name in enumerate(names)
    ]
    pd.DataFrame(rows, columns=COLUMNS).to_csv(root / "artists.csv", index=False)


def make_download(
    root: Path,
    per_artist: int = 10,
    *,
    extra_csv_artists: tuple[str, ...] = (),
    orphan_folders: tuple[str, ...] = (),
    corrupt: bool = True,
    duplicate_durer: bool = False,
) -> Path:
    """Write the fake download under ``root``; returns ``root``. The Dürer folder has the
    mis-encoded name; with ``corrupt`` van Gogh gets one extra, truncated JPEG."""
    images = root / "images" / "images"
    images.mkdir(parents=True)
    for a, (name, colour) in enumerate(ARTISTS.items()):
        folder = folder_name(mis_encoded(name) if "ü" in name else name)
        (images / folder).mkdir()
        for n in range(1, per_artist + 1):
            (images / folder / f"{folder}_{n}.jpg").write_bytes(jpeg_bytes(colour, 100 * a + n))
    if corrupt:
        good = jpeg_bytes((0, 0, 255), 999)
        name = folder_name("Vincent van Gogh")
        (images / name / f"{name}_{per_artist + 1}.jpg").write_bytes(good[: len(good) // 2])
    if duplicate_durer:  # the properly spelled copy some downloads also contain
        source = images / folder_name(mis_encoded("Albrecht Dürer"))
        copy = images / "Albrecht_Dürer"
        copy.mkdir()
        for path in source.iterdir():
            target = path.name.replace(source.name, copy.name)
            (copy / target).write_bytes(path.read_bytes())
    for orphan in orphan_folders:
        (images / orphan).mkdir()
        (images / orphan / f"{orphan}_1.jpg").write_bytes(jpeg_bytes((9, 9, 9), 7))
    names = [*ARTISTS, *extra_csv_artists]
    write_artists_csv(root, names, {n: per_artist for n in ARTISTS})
    return root
