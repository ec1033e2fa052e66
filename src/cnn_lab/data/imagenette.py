"""Imagenette in the official layout (``train|val/<wnid>/*.JPEG``), decoded into memory.

torchvision's ``Imagenette`` only downloads (``imagenette2-160/`` under the root); reading is
ours either way, so a downloaded copy and any folder in the official layout load the same:
greyscale and CMYK images become RGB, the short side is resized to ``image_size`` and the
centre cropped square, and classes get readable names instead of wnids.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cnn_lab.data.sources import DatasetBundle, LabelledImages

# The ten Imagenette classes (fast.ai), first ImageNet synonym of each.
WNID_NAMES = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888257": "parachute",
}
EXTENSIONS = (".jpeg", ".jpg", ".png")
TORCHVISION_FOLDER = "imagenette2-160"


def download_imagenette(root: str | Path) -> Path:
    """Fetch the 160-px Imagenette through torchvision (needs internet); its folder."""
    from torchvision.datasets import Imagenette

    for split in ("train", "val"):
        Imagenette(str(root), split=split, size="160px", download=True)
    return Path(root) / TORCHVISION_FOLDER


def find_imagenette_root(root: str | Path) -> Path:
    """``root`` itself when it holds ``train/`` and ``val/`` (or wnid folders), else the
    torchvision download folder below it."""
    root = Path(root)
    for candidate in (root, root / TORCHVISION_FOLDER):
        if (candidate / "train").is_dir():
            return candidate
    return root


def _class_folders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_image(path: Path, image_size: int) -> np.ndarray:
    """One file as a 3 x S x S uint8 array: RGB, short side resized to S, centre crop."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        width, height = img.size
        scale = image_size / min(width, height)
        new = (max(image_size, round(width * scale)), max(image_size, round(height * scale)))
        img = img.resize(new, Image.BILINEAR)
        left, top = (new[0] - image_size) // 2, (new[1] - image_size) // 2
        img = img.crop((left, top, left + image_size, top + image_size))
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def read_split(
    folder: Path,
    image_size: int,
    *,
    class_names: list[str] | None = None,
    max_per_class: int | None = None,
    workers: int = 4,
) -> LabelledImages:
    """Every image of ``folder/<wnid>/``, labelled by the sorted wnid order (or by
    ``class_names``' order, so val uses train's labels)."""
    wnids = [p.name for p in _class_folders(folder)]
    if not wnids:
        raise FileNotFoundError(f"no class folders (<wnid>/*.JPEG) under {folder}")
    names = [WNID_NAMES.get(w, w) for w in wnids]
    order = class_names or names
    unknown = sorted(set(names) - set(order))
    if unknown:
        raise ValueError(f"{folder} has classes {unknown} that the training split lacks")
    files: list[tuple[Path, int]] = []
    for wnid, name in zip(wnids, names, strict=True):
        found = sorted(
            p for p in (folder / wnid).iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file()
        )
        files += [(p, order.index(name)) for p in found[:max_per_class]]
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(EXTENSIONS)}) under {folder}")
    with ThreadPoolExecutor(max(1, workers)) as pool:  # PIL decodes without the GIL
        images = list(pool.map(lambda f: load_image(f[0], image_size), files))
    labels = np.array([label for _, label in files], dtype=np.int64)
    return LabelledImages(np.stack(images), labels, list(order))


def load_imagenette(
    root: str | Path,
    *,
    image_size: int = 160,
    download: bool = False,
    max_per_class: int | None = None,
    workers: int = 4,
    key: str = "data",
) -> DatasetBundle:
    """Imagenette from ``root``: ``train`` as the pool and ``val`` as the test set; a folder
    of wnid folders alone (no train/val) becomes a pool without an official test set."""
    if download:
        download_imagenette(root)
    base = find_imagenette_root(root)
    if not (base / "train").is_dir() and not _class_folders(base):
        raise FileNotFoundError(
            f"Imagenette was not found under {root} (parameter {key}.root) and download is "
            f"off. Set {key}.download: true to fetch the 160-px version (needs internet), or "
            f"point {key}.root at a folder in the official layout (train|val/<wnid>/*.JPEG)."
        )
    options = {"max_per_class": max_per_class, "workers": workers}
    if not (base / "train").is_dir():
        return DatasetBundle("imagenette", read_split(base, image_size, **options))
    train = read_split(base / "train", image_size, **options)
    test = None
    if (base / "val").is_dir():
        test = read_split(base / "val", image_size, class_names=train.class_names, **options)
    return DatasetBundle("imagenette", train, test)
