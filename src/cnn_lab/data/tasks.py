"""Class-disjoint tasks carved from one dataset, for transfer between related problems
(the split-digits default: source digits 0-4, target digits 5-9)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnn_lab.data.sources import DatasetBundle, LabelledImages


def select_classes(images: LabelledImages, classes: Sequence[int]) -> LabelledImages:
    """The samples of ``classes``, relabelled 0..k-1 in the order given."""
    unknown = [c for c in classes if not 0 <= c < images.num_classes]
    if unknown:
        raise ValueError(f"classes {unknown} do not exist (the dataset has {images.num_classes})")
    mapping = np.full(images.num_classes, -1, dtype=np.int64)
    mapping[list(classes)] = np.arange(len(classes))
    keep = mapping[images.labels] >= 0
    return LabelledImages(
        images.images[keep],
        mapping[images.labels[keep]],
        [images.class_names[c] for c in classes],
    )


def class_subset(bundle: DatasetBundle, classes: Sequence[int] | None) -> DatasetBundle:
    """``bundle`` restricted to ``classes`` (training pool and test set alike); all
    classes when ``classes`` is empty or ``None``."""
    if not classes:
        return bundle
    test = select_classes(bundle.test, classes) if bundle.test is not None else None
    name = f"{bundle.name}[{','.join(str(c) for c in classes)}]"
    return DatasetBundle(name, select_classes(bundle.train, classes), test)
