"""Index the Kaggle "Best Artworks of All Time" download into a table of (path, artist, label).

The real download has traps this module handles: the Albrecht Dürer folder name is
mis-encoded (UTF-8 bytes read as cp437/cp1252, often in decomposed form) and some copies
hold it twice, so folder names are matched to ``artists.csv`` after repairing and
Unicode-normalising them, and duplicate files are merged without being counted twice.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("id", "name", "years", "genre", "nationality", "bio", "wikipedia", "paintings")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
KAGGLE_COMMAND = "kaggle datasets download -d ikarus777/best-artworks-of-all-time"
_MOJIBAKE_CODECS = ("cp437", "cp1252", "latin-1")


class ArtworksDataError(FileNotFoundError):
    """The download is missing or not in the expected layout."""


def _how_to_get_it(root: Path) -> str:
    return (
        f"Download it with the Kaggle CLI (credentials in ~/.kaggle/kaggle.json, or "
        f"KAGGLE_CONFIG_DIR=conf/local): `{KAGGLE_COMMAND} -p {root} --unzip`; "
        f"see docs/artworks.md."
    )


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 bytes that were decoded with a legacy code page ("DuÌˆrer", "Du╠êrer")."""
    for codec in _MOJIBAKE_CODECS:
        try:
            repaired = text.encode(codec).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        if repaired != text:
            return repaired
    return text


def name_key(name: str) -> str:
    """A matching key for artist and folder names: mojibake repaired, accents dropped
    (NFKD, combining marks removed), case folded, ``_``/``-``/spaces collapsed."""
    text = unicodedata.normalize("NFKD", repair_mojibake(name))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[\s_\-]+", " ", text).strip().casefold()


@dataclass
class ArtworksIndex:
    """Readable-by-name images and what was found wrong on the way."""

    table: pd.DataFrame  # path (relative to root), artist, label, folder
    class_names: list[str]
    artists_without_images: list[str] = field(default_factory=list)
    folders_without_artist: list[str] = field(default_factory=list)
    merged_folders: dict[str, list[str]] = field(default_factory=dict)
    duplicate_files: list[str] = field(default_factory=list)
    excluded_artists: list[str] = field(default_factory=list)
    expected_counts: dict[str, int] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        return {
            "images": len(self.table),
            "artists": len(self.class_names),
            "artists_without_images": self.artists_without_images,
            "folders_without_artist": self.folders_without_artist,
            "merged_folders": self.merged_folders,
            "duplicate_files": self.duplicate_files,
            "excluded_artists": self.excluded_artists,
            "expected_counts": self.expected_counts,
        }


def read_artists(csv_path: Path, root: Path) -> pd.DataFrame:
    if not csv_path.is_file():
        raise ArtworksDataError(
            f"artworks: {csv_path.name} not found at {csv_path.resolve()} (looked under the "
            f"data root {root.resolve()}, parameter artworks.data.root). {_how_to_get_it(root)}"
        )
    artists = pd.read_csv(csv_path)
    missing = [c for c in ("name",) if c not in artists.columns]
    if missing:
        raise ValueError(
            f"artworks: {csv_path} has columns {list(artists.columns)}; expected at least "
            f"'name' (the Kaggle file has {', '.join(CSV_COLUMNS)})"
        )
    return artists


def _file_digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def index_artworks(
    root: str | Path,
    *,
    csv: str = "artists.csv",
    images: str = "images/images",
    exclude: tuple[str, ...] | list[str] = (),
) -> ArtworksIndex:
    """Match image folders to ``artists.csv`` rows; labels follow the CSV order of the
    artists that have images. Raises :class:`ArtworksDataError` when the download is absent."""
    root = Path(root)
    artists = read_artists(root / csv, root)
    image_dir = root / images
    if not image_dir.is_dir():
        raise ArtworksDataError(
            f"artworks: image folder not found at {image_dir.resolve()} (parameter "
            f"artworks.data.images under artworks.data.root = {root}); the Kaggle download "
            f"unpacks to {images}/<Artist_Name>/<Artist_Name>_<n>.jpg. {_how_to_get_it(root)}"
        )
    by_key: dict[str, str] = {}
    for name in artists["name"].astype(str):
        key = name_key(name)
        if key in by_key:
            raise ValueError(f"artworks: {csv} lists the artist {name!r} twice")
        by_key[key] = name
    expected = {}
    if "paintings" in artists.columns:
        expected = {
            str(n): int(p) for n, p in zip(artists["name"], artists["paintings"], strict=True)
        }
    excluded_keys = {name_key(e) for e in exclude}
    unknown_excluded = sorted(e for e in exclude if name_key(e) not in by_key)
    if unknown_excluded:
        raise ValueError(
            f"artworks.data.exclude_artists: {unknown_excluded} are not in {csv}; "
            f"names there include {sorted(by_key.values())[:5]}"
        )

    files: dict[str, dict[str, Path]] = {}  # artist -> file key -> path
    folders: dict[str, list[str]] = {}
    orphans, duplicates = [], []
    for folder in sorted(p for p in image_dir.iterdir() if p.is_dir()):
        artist = by_key.get(name_key(folder.name))
        if artist is None:
            orphans.append(folder.name)
            continue
        folders.setdefault(artist, []).append(folder.name)
        seen = files.setdefault(artist, {})
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            key = name_key(path.stem)
            if key in seen:
                if _file_digest(seen[key]) == _file_digest(path):
                    duplicates.append(path.relative_to(root).as_posix())
                    continue
                key = f"{key} ({folder.name})"  # same name, different picture: keep both
            seen[key] = path

    if orphans:
        logger.warning(
            "artworks: %d image folder(s) match no artist in %s and are ignored: %s",
            len(orphans),
            csv,
            ", ".join(orphans),
        )
    merged = {a: f for a, f in folders.items() if len(f) > 1}
    if merged:
        logger.warning(
            "artworks: merged folders of one artist (after Unicode normalisation): %s; "
            "%d duplicate file(s) counted once",
            merged,
            len(duplicates),
        )
    without = [a for a in by_key.values() if not files.get(a)]
    if without:
        logger.warning(
            "artworks: %d artist(s) in %s have no images and are dropped: %s",
            len(without),
            csv,
            ", ".join(without),
        )
    excluded = [a for a in by_key.values() if name_key(a) in excluded_keys]
    class_names = [a for a in by_key.values() if files.get(a) and a not in excluded]
    if not class_names:
        raise ArtworksDataError(
            f"artworks: no images of any artist in {csv} were found under {image_dir.resolve()}. "
            f"{_how_to_get_it(root)}"
        )
    rows = [
        {
            "path": path.relative_to(root).as_posix(),
            "artist": artist,
            "label": label,
            "folder": path.parent.name,
        }
        for label, artist in enumerate(class_names)
        for path in files[artist].values()
    ]
    table = pd.DataFrame(rows, columns=["path", "artist", "label", "folder"])
    return ArtworksIndex(
        table=table,
        class_names=class_names,
        artists_without_images=without,
        folders_without_artist=orphans,
        merged_folders=merged,
        duplicate_files=duplicates,
        excluded_artists=excluded,
        expected_counts={a: expected[a] for a in class_names if a in expected},
    )
