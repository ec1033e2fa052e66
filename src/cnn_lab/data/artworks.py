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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cnn_lab.data.image_cache import DecodedImages, decode_all
from cnn_lab.data.splits import stratified_split

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("id", "name", "years", "genre", "nationality", "bio", "wikipedia", "paintings")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
KAGGLE_COMMAND = "kaggle datasets download -d ikarus777/best-artworks-of-all-time"
_MOJIBAKE_CODECS = ("cp437", "cp1252", "latin-1")
SPLITS = ("train", "val", "test")


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


def _artists_by_key(artists: pd.DataFrame, csv: str) -> dict[str, str]:
    """Each artist under its normalised name (folders spell names their own way)."""
    by_key: dict[str, str] = {}
    for name in artists["name"].astype(str):
        key = name_key(name)
        if key in by_key:
            raise ValueError(f"artworks: {csv} lists the artist {name!r} twice")
        by_key[key] = name
    return by_key


def _check_excluded(exclude: Sequence[str], by_key: dict[str, str], csv: str) -> None:
    unknown = sorted(e for e in exclude if name_key(e) not in by_key)
    if unknown:
        raise ValueError(
            f"artworks.data.exclude_artists: {unknown} are not in {csv}; "
            f"names there include {sorted(by_key.values())[:5]}"
        )


@dataclass
class _Scan:
    """What the image folders hold, artist by artist."""

    files: dict[str, dict[str, Path]] = field(default_factory=dict)  # artist -> key -> path
    folders: dict[str, list[str]] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def _scan(image_dir: Path, root: Path, by_key: dict[str, str]) -> _Scan:
    """Every image under an artist's folder(s); byte-identical copies in two folders of one
    artist count once, same-named different pictures are both kept."""
    scan = _Scan()
    for folder in sorted(p for p in image_dir.iterdir() if p.is_dir()):
        artist = by_key.get(name_key(folder.name))
        if artist is None:
            scan.orphans.append(folder.name)
            continue
        scan.folders.setdefault(artist, []).append(folder.name)
        seen = scan.files.setdefault(artist, {})
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            key = name_key(path.stem)
            if key in seen:
                if _file_digest(seen[key]) == _file_digest(path):
                    scan.duplicates.append(path.relative_to(root).as_posix())
                    continue
                key = f"{key} ({folder.name})"
            seen[key] = path
    return scan


def _warn_about(scan: _Scan, without: list[str], csv: str) -> None:
    if scan.orphans:
        logger.warning(
            "artworks: %d image folder(s) match no artist in %s and are ignored: %s",
            len(scan.orphans),
            csv,
            ", ".join(scan.orphans),
        )
    merged = {a: f for a, f in scan.folders.items() if len(f) > 1}
    if merged:
        logger.warning(
            "artworks: merged folders of one artist (after Unicode normalisation): %s; "
            "%d duplicate file(s) counted once",
            merged,
            len(scan.duplicates),
        )
    if without:
        logger.warning(
            "artworks: %d artist(s) in %s have no images and are dropped: %s",
            len(without),
            csv,
            ", ".join(without),
        )


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
    by_key = _artists_by_key(artists, csv)
    _check_excluded(exclude, by_key, csv)
    scan = _scan(image_dir, root, by_key)
    without = [a for a in by_key.values() if not scan.files.get(a)]
    _warn_about(scan, without, csv)
    excluded_keys = {name_key(e) for e in exclude}
    excluded = [a for a in by_key.values() if name_key(a) in excluded_keys]
    class_names = [a for a in by_key.values() if scan.files.get(a) and a not in excluded]
    if not class_names:
        raise ArtworksDataError(
            f"artworks: no images of any artist in {csv} were found under {image_dir.resolve()}. "
            f"{_how_to_get_it(root)}"
        )
    rows = [
        {
            "path": p.relative_to(root).as_posix(),
            "artist": a,
            "label": label,
            "folder": p.parent.name,
        }
        for label, a in enumerate(class_names)
        for p in scan.files[a].values()
    ]
    expected = {}
    if "paintings" in artists.columns:
        expected = dict(
            zip(artists["name"].astype(str), artists["paintings"].astype(int), strict=True)
        )
    return ArtworksIndex(
        table=pd.DataFrame(rows, columns=["path", "artist", "label", "folder"]),
        class_names=class_names,
        artists_without_images=without,
        folders_without_artist=scan.orphans,
        merged_folders={a: f for a, f in scan.folders.items() if len(f) > 1},
        duplicate_files=scan.duplicates,
        excluded_artists=excluded,
        expected_counts={a: expected[a] for a in class_names if a in expected},
    )


def check_class_sizes(images: pd.DataFrame, class_names: list[str], minimum: int) -> None:
    """Every indexed artist needs ``minimum`` readable images (an artist whose files were
    all unreadable counts as 0, not as absent)."""
    counts = images["artist"].value_counts().reindex(class_names, fill_value=0)
    small = counts[counts < minimum]
    if len(small):
        listed = ", ".join(f"{artist!r} has {n}" for artist, n in small.sort_values().items())
        raise ValueError(
            f"artworks: too few readable images for a stratified train/val/test split "
            f"(artworks.data.min_images_per_class = {minimum}): {listed}. Add images, or "
            f"leave the artist out with artworks.data.exclude_artists."
        )


def split_artworks(
    images: pd.DataFrame, class_names: list[str], data: dict[str, Any], seed: int
) -> dict[str, Any]:
    """Stratified train/val/test indices into the readable-image table, by the study's
    ``data`` settings (ratios, ``min_images_per_class``)."""
    check_class_sizes(images, class_names, data["min_images_per_class"])
    labels = images["label"].to_numpy()
    try:
        split = stratified_split(
            labels,
            val_ratio=data["val_ratio"] / (1.0 - data["test_ratio"]),  # a share of the rest
            test_ratio=data["test_ratio"],
            seed=seed,
        )
    except ValueError as err:  # scikit-learn: a split smaller than the number of classes
        raise ValueError(
            f"artworks: cannot split {len(labels)} images of {len(set(labels))} artists "
            f"with val_ratio {data['val_ratio']} and test_ratio {data['test_ratio']}: {err}"
        ) from err
    split["val_ratio"] = data["val_ratio"]
    return split


def decode_index(index: pd.DataFrame, data: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Decode (and, with ``data.cache``, cache) every indexed image once: the readable
    images' rows with their ``cache_row`` (-1 without a cache), and what happened (the
    size, the cache file, the unreadable files with their errors, also logged as a
    warning)."""
    root = Path(data["root"])
    store, kept, unreadable = decode_all(
        [root / p for p in index["path"]],
        data["image_size"],
        cache_dir=data["cache_dir"] if data["cache"] else None,
        workers=data["workers"],
    )
    if unreadable:
        logger.warning(
            "artworks: %d unreadable image(s) skipped: %s",
            len(unreadable),
            "; ".join(f"{p} ({e})" for p, e in unreadable.items()),
        )
    images = index.iloc[kept].reset_index(drop=True)
    images["cache_row"] = store.cache_rows if store.cache_rows is not None else -1
    report = {
        "image_size": data["image_size"],
        "cache_file": None if store.cache_file is None else str(store.cache_file),
        "readable": len(images),
        "unreadable_count": len(unreadable),
        "unreadable": unreadable,
    }
    return images, report


def open_store(images: pd.DataFrame, decoded: dict[str, Any], root: str | Path) -> DecodedImages:
    """The store :func:`decode_index` filled, for the readable ``images`` under ``root``."""
    cache = decoded["cache_file"]
    return DecodedImages(
        [Path(root) / p for p in images["path"]],
        decoded["image_size"],
        None if cache is None else Path(cache),
        None if cache is None else images["cache_row"].astype(int).tolist(),
    )


def split_counts(images: pd.DataFrame, split: dict[str, Any]) -> pd.DataFrame:
    """Images per artist (rows) and split (columns: train, val, test)."""
    part = pd.Series("", index=images.index)
    for name in SPLITS:
        part.iloc[split[name]] = name
    return pd.crosstab(images["artist"], part)[list(SPLITS)]


def data_problems(decoded: Mapping[str, Any], index_report: Mapping[str, Any]) -> list[str]:
    """What indexing and decoding left out, one line each: unreadable images skipped,
    artists without images, folders without an artist, excluded artists, duplicates."""
    problems = [
        f"unreadable image skipped: {path} ({error})"
        for path, error in (decoded.get("unreadable") or {}).items()
    ]
    problems += [
        f"artist without images, left out: {name}"
        for name in index_report.get("artists_without_images", [])
    ]
    problems += [
        f"image folder without an artist in the CSV, left out: {name}"
        for name in index_report.get("folders_without_artist", [])
    ]
    problems += [
        f"artist excluded (artworks.data.exclude_artists): {name}"
        for name in index_report.get("excluded_artists", [])
    ]
    problems += [
        f"duplicate file counted once: {path}" for path in index_report.get("duplicate_files", [])
    ]
    return problems
