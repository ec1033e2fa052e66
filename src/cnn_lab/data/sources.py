"""Dataset sources, all returned in one shape: uint8 N x C x H x W images and int labels.

Keeping every source in the same in-memory form lets one engine and one batching path
serve every study; sources with an official test split return it separately.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)
UNREADABLE_ACTIONS = ("stop", "skip")


@dataclass
class LabelledImages:
    images: np.ndarray  # uint8, N x C x H x W
    labels: np.ndarray  # int64, N
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 N x C x H x W, got {self.images.dtype} {self.images.shape}"
            )
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.images.shape[1:])  # type: ignore[return-value]


@dataclass
class DatasetBundle:
    """A named dataset: the training pool and, when the source has one, its official test set."""

    name: str
    train: LabelledImages
    test: LabelledImages | None = None
    skipped: list[str] = field(default_factory=list)  # unreadable files left out

    def resized(self, size: int) -> DatasetBundle:
        """The bundle with every image resized to ``size`` x ``size`` (bilinear, antialiased
        when shrinking): a network designed for 28x28 inputs fed 8x8 digits."""
        from cnn_lab.data.transforms import resize_images

        def resize(part: LabelledImages | None) -> LabelledImages | None:
            if part is None:
                return None
            return LabelledImages(resize_images(part.images, size), part.labels, part.class_names)

        return DatasetBundle(self.name, resize(self.train), resize(self.test), list(self.skipped))


def load_digits_images() -> DatasetBundle:
    """scikit-learn's bundled 8x8 digits (1,797 images, no download), scaled 0..16 -> 0..255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    return DatasetBundle("digits", LabelledImages(images, labels, [str(d) for d in range(10)]))


def _missing_data_error(name: str, root: Path, key: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{name} was not found under {root} (parameter {key}.root) and download is off. "
        f"Set {key}.download: true to fetch it (needs internet), or put the official files "
        f"there."
    )


# Official python-pickle layout: folder, training batches, test batch, meta file,
# label key in the batches, class-name key in the meta file.
_CIFAR_FILES = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "batches.meta",
        "labels",
        "label_names",
    ),
    "cifar100": (
        "cifar-100-python",
        ["train"],
        ["test"],
        "meta",
        "fine_labels",
        "fine_label_names",
    ),
}


def _read_cifar(name: str, root: Path, key: str) -> dict[bool, LabelledImages]:
    """CIFAR from its official pickle files. Read directly rather than through torchvision,
    whose loader insists on the published checksums even when nothing is downloaded, and
    with an unpickler that admits only arrays and plain data (cifar_files.py)."""
    from cnn_lab.data.cifar_files import read_cifar_batch

    folder, train_files, test_files, meta_file, label_key, names_key = _CIFAR_FILES[name]
    base = root / folder
    needed = [base / f for f in (*train_files, *test_files, meta_file)]
    if not all(path.is_file() for path in needed):
        raise _missing_data_error(name, root, key)

    names = [str(n) for n in read_cifar_batch(base / meta_file)[names_key]]
    splits = {}
    for train, files in ((True, train_files), (False, test_files)):
        batches = [read_cifar_batch(base / f) for f in files]
        data = np.concatenate([np.asarray(b["data"], np.uint8) for b in batches])
        labels = np.concatenate([np.asarray(b[label_key], np.int64) for b in batches])
        splits[train] = LabelledImages(
            np.ascontiguousarray(data.reshape(-1, 3, 32, 32)), labels, names
        )
    return splits


def load_named_images(
    name: str, root: str | Path, *, download: bool, key: str = "data"
) -> DatasetBundle:
    """scikit-learn's ``digits`` (bundled), else :func:`load_torchvision_images`."""
    if name == "digits":
        return load_digits_images()
    return load_torchvision_images(name, root, download=download, key=key)


def load_source(data: Mapping[str, Any], key: str = "data") -> DatasetBundle:
    """The images a study's ``data`` block names: ``source`` (a named dataset, or
    ``image_folder`` with its ``image_folder`` options: size, on_unreadable, channels),
    ``root`` and ``download``; ``key`` (``<study>.data``) names the block in errors."""
    if data["source"] == "image_folder":
        folder = data["image_folder"]
        return load_image_folder(
            data["root"],
            size=folder["size"],
            on_unreadable=folder["on_unreadable"],
            key=key,
            channels=folder["channels"],
            options_key=f"{key}.image_folder",
        )
    return load_named_images(data["source"], data["root"], download=data["download"], key=key)


def load_torchvision_images(
    name: str, root: str | Path, *, download: bool, key: str = "data"
) -> DatasetBundle:
    """MNIST, CIFAR-10 or CIFAR-100 through torchvision, in their official file formats."""
    from torchvision import datasets

    classes = {"mnist": datasets.MNIST, "cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}
    if name not in classes:
        raise ValueError(f"unknown torchvision dataset {name!r}; allowed: {', '.join(classes)}")
    root = Path(root)
    if name in _CIFAR_FILES:
        if download:  # torchvision fetches and checks the archive; we read the pickles
            classes[name](root=str(root), train=True, download=True)
        splits = _read_cifar(name, root, key)
        return DatasetBundle(name, splits[True], splits[False])
    splits = {}
    for train in (True, False):
        try:
            ds = classes[name](root=str(root), train=train, download=download)
        except RuntimeError as err:  # torchvision's "Dataset not found or corrupted"
            raise _missing_data_error(name, root, key) from err
        data = np.asarray(ds.data)
        images = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)
        labels = np.asarray(ds.targets, dtype=np.int64)
        splits[train] = LabelledImages(
            np.ascontiguousarray(images, np.uint8), labels, list(ds.classes)
        )
    return DatasetBundle(name, splits[True], splits[False])


# PIL modes with one value per pixel (alpha aside): "auto" keeps such folders greyscale.
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
CHANNEL_CHOICES = ("auto", 1, 3)


def _read_image(path: str, size: int, channels: int | str = 3) -> np.ndarray:
    """One image as uint8 C x size x size: ``channels`` 1 (luminance), 3 (RGB), or
    "auto" (1 for a greyscale file, 3 otherwise)."""
    from PIL import Image

    with Image.open(path) as image:
        if channels == "auto":
            channels = 1 if image.mode in GREY_MODES else 3
        mode = "L" if channels == 1 else "RGB"
        if image.mode in ("I", "I;16", "F") and mode == "L":
            # 16-bit / float greyscale: scale to 0..255 rather than clip
            values = np.asarray(image, dtype=np.float64)
            top = max(float(values.max()), 1.0)
            image = Image.fromarray(np.rint(values * (255.0 / top)).astype(np.uint8))
        converted = image.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(converted, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def load_image_folder(
    root: str | Path,
    *,
    size: int,
    on_unreadable: str = "stop",
    key: str = "data",
    channels: int | str = "auto",
    options_key: str | None = None,
) -> DatasetBundle:
    """Any ``root/<class>/<image>`` folder (torchvision's ImageFolder layout) as
    ``size`` x ``size`` images; class names are the folder names, sorted.

    ``channels``: "auto" keeps a folder whose every image is greyscale as 1 channel (an
    MNIST-like folder stays 1x28x28, so first-layer parameter counts are not tripled) and
    reads any other folder as RGB, greyscale files repeated over 3 channels; 1 or 3 force
    luminance or RGB.

    Unreadable files are each named in the log, then either stop the run
    (``on_unreadable="stop"``) or are left out and listed in ``DatasetBundle.skipped``.
    Decoded once into memory: meant for folders the size of CIFAR, not ImageNet.
    Messages name ``<key>.root`` and ``<options_key>.on_unreadable`` / ``.channels``
    (``options_key`` defaults to ``key``), the parameters a user would change.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    options = options_key or key
    if channels not in CHANNEL_CHOICES:
        raise ValueError(f"{options}.channels must be one of auto, 1, 3, got {channels!r}")
    if on_unreadable not in UNREADABLE_ACTIONS:
        raise ValueError(
            f"{options}.on_unreadable must be one of {', '.join(UNREADABLE_ACTIONS)}, "
            f"got {on_unreadable!r}"
        )
    root = Path(root)
    expected = f"expected {root}/<class>/<image> with extensions {', '.join(IMG_EXTENSIONS)}"
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} (parameter {key}.root) does not exist")
    try:
        classes, class_to_idx = find_classes(str(root))
    except FileNotFoundError:
        classes, class_to_idx = [], {}
    samples = make_dataset(str(root), class_to_idx, IMG_EXTENSIONS, allow_empty=True)
    if not samples:
        raise ValueError(f"no images found in {root} (parameter {key}.root); {expected}")
    images, labels, skipped = [], [], []
    for path, label in samples:
        try:
            images.append(_read_image(path, size, channels))
        except (OSError, ValueError, SyntaxError) as err:  # PIL's ways of saying "unreadable"
            logger.warning("unreadable image %s: %s", path, err)
            skipped.append(path)
            continue
        labels.append(label)
    if skipped and on_unreadable == "stop":
        listed = "\n  ".join(skipped)
        raise ValueError(
            f"{len(skipped)} unreadable image(s) in {root}:\n  {listed}\n"
            f"fix or remove them, or set {options}.on_unreadable: skip to leave them out"
        )
    if skipped:
        logger.warning("skipped %d unreadable image(s) in %s", len(skipped), root)
    if not images:
        raise ValueError(f"no readable images in {root} (parameter {key}.root); {expected}")
    if channels == "auto" and any(len(image) == 3 for image in images):
        # a mixed folder: greyscale files become three equal channels, as PIL's RGB does
        images = [np.repeat(image, 3, axis=0) if len(image) == 1 else image for image in images]
    data = LabelledImages(np.stack(images), np.asarray(labels, dtype=np.int64), list(classes))
    return DatasetBundle(root.name or str(root), data, skipped=skipped)
