"""Catalog datasets that store data, never code.

A pickle runs whatever its file says when it is loaded, so a file planted in ``data/``
would run with the user's rights on the next ``kedro run``. These datasets read formats
that can only describe data:

- :class:`JSONValueDataset`: configs, results and report sections as JSON, with tuples,
  non-string dict keys, numpy arrays and DataFrames tagged so that they come back as they
  went in (NaN and infinities are written as JSON's usual ``NaN`` / ``Infinity``).
- :class:`TorchValueDataset` and its kinds :class:`DatasetBundleDataset`,
  :class:`ModelDataset` and :class:`BaselinesDataset`: arrays and tensors in a
  ``torch.save`` file read back with ``torch.load(weights_only=True)``, which only accepts
  tensors and plain containers; our own types are rebuilt from a fixed list by name.
- :class:`ArraysDataset`: a dict of numpy arrays as ``.npz``, read with
  ``allow_pickle=False``.

A file that is not what the dataset wrote fails to load with a message naming it; nothing
in it is run.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import PurePosixPath
from typing import Any

import fsspec
import numpy as np
from kedro.io.core import (
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_filepath_str,
    get_protocol_and_path,
)

TAG = "__cnn_lab__"  # key of an object that encodes a value JSON or torch has no form for


def _encode(value: Any, leaf: Callable[[Any, str], Any], where: str) -> Any:
    """``value`` with tuples and dicts JSON cannot key tagged; anything else goes to
    ``leaf``, which encodes it or raises TypeError naming ``where``."""
    if isinstance(value, np.generic):  # numpy scalars in results: stored as Python numbers
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return float(value)
    if isinstance(value, tuple):
        return {
            TAG: "tuple",
            "items": [_encode(v, leaf, f"{where}[{i}]") for i, v in enumerate(value)],
        }
    if isinstance(value, list):
        return [_encode(v, leaf, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: _encode(v, leaf, f"{where}[{k!r}]") for k, v in value.items()}
        items = [
            [_encode(k, leaf, f"{where} key {k!r}"), _encode(v, leaf, f"{where}[{k!r}]")]
            for k, v in value.items()
        ]
        return {TAG: "dict", "items": items}
    return leaf(value, where)


def _decode(value: Any, leaf: Callable[[str, dict[str, Any]], Any]) -> Any:
    if isinstance(value, list):
        return [_decode(v, leaf) for v in value]
    if not isinstance(value, dict):
        return value
    if TAG not in value:
        return {k: _decode(v, leaf) for k, v in value.items()}
    if value[TAG] == "tuple":
        return tuple(_decode(v, leaf) for v in value["items"])
    if value[TAG] == "dict":
        return {_decode(k, leaf): _decode(v, leaf) for k, v in value["items"]}
    return leaf(value[TAG], value)


def _cannot_store(value: Any, where: str, form: str) -> TypeError:
    return TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which cannot be "
        f"stored as {form}; return plain data (dicts, lists, numbers, str, arrays) from the node"
    )


def _index_form(index: Any, where: str) -> dict[str, Any]:
    import pandas as pd

    if isinstance(index, pd.RangeIndex):
        return {"range": [index.start, index.stop, index.step], "names": [index.name]}
    labels = _encode(list(index), _json_leaf, where)
    return {"labels": labels, "names": _encode(list(index.names), _json_leaf, where)}


def _index_from(form: dict[str, Any]) -> Any:
    import pandas as pd

    names = _decode(form["names"], _json_decode_leaf)
    if "range" in form:
        return pd.RangeIndex(*form["range"], name=names[0])
    labels = _decode(form["labels"], _json_decode_leaf)
    if len(names) > 1:
        return pd.MultiIndex.from_tuples(labels, names=names)
    return pd.Index(labels, name=names[0], tupleize_cols=False)


def _json_leaf(value: Any, where: str) -> Any:
    import pandas as pd

    if isinstance(value, np.ndarray) and value.dtype.kind in "biufU":
        data = _encode(value.ravel().tolist(), _json_leaf, where)
        return {TAG: "ndarray", "dtype": value.dtype.str, "shape": list(value.shape), "data": data}
    if isinstance(value, pd.DataFrame):
        columns = range(value.shape[1])
        return {
            TAG: "dataframe",
            "columns": _index_form(value.columns, f"{where}.columns"),
            "index": _index_form(value.index, f"{where}.index"),
            "dtypes": [str(dtype) for dtype in value.dtypes],
            "data": [_encode(value.iloc[:, i].tolist(), _json_leaf, where) for i in columns],
        }
    raise _cannot_store(value, where, "JSON")


def _json_decode_leaf(kind: str, value: dict[str, Any]) -> Any:
    import pandas as pd

    if kind == "ndarray":
        data = np.array(_decode(value["data"], _json_decode_leaf), dtype=np.dtype(value["dtype"]))
        return data.reshape(value["shape"])
    if kind == "dataframe":
        index = _index_from(value["index"])
        data = [_decode(column, _json_decode_leaf) for column in value["data"]]
        columns = enumerate(zip(data, value["dtypes"], strict=True))
        frame = pd.DataFrame(
            {i: pd.Series(c, dtype=dtype, index=index) for i, (c, dtype) in columns}, index=index
        )
        frame.columns = _index_from(value["columns"])
        return frame
    raise ValueError(f"unknown tagged value {kind!r}")


def to_json(value: Any) -> bytes:
    """``value`` as UTF-8 JSON (tagged where JSON alone would lose its type)."""
    return json.dumps(_encode(value, _json_leaf, "value"), indent=1).encode("utf-8")


def from_json(raw: bytes) -> Any:
    return _decode(json.loads(raw.decode("utf-8")), _json_decode_leaf)


@dataclass
class LinearBaseline:
    """A fitted linear baseline (standardise, then a linear classifier) as plain arrays.

    scikit-learn estimators can only be saved as pickles, so the catalog keeps what
    prediction needs: the scaler's mean and scale and the classifier's coefficients.
    Predictions equal the fitted pipeline's for LinearSVC, LogisticRegression and
    SGDClassifier, which all predict the arg-max of ``x @ coef.T + intercept``.
    """

    name: str
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # classes x features (1 x features for two classes)
    intercept: np.ndarray
    classes: np.ndarray
    fit_seconds: float
    converged: bool
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_fit(cls, fit: Any) -> LinearBaseline:
        """From an :class:`~cnn_lab.evaluation.baselines.BaselineFit`."""
        scaler, model = fit.pipeline[0], fit.pipeline[-1]
        return cls(
            fit.name,
            np.asarray(scaler.mean_, np.float64),
            np.asarray(scaler.scale_, np.float64),
            np.asarray(model.coef_, np.float64),
            np.asarray(model.intercept_, np.float64).reshape(-1),
            np.asarray(model.classes_),
            float(fit.fit_seconds),
            bool(fit.converged),
            list(fit.warnings),
        )

    @property
    def trainable_parameters(self) -> int:
        return int(self.coef.size + self.intercept.size)

    def predict(self, features: np.ndarray) -> np.ndarray:
        scores = ((np.asarray(features) - self.mean) / self.scale) @ self.coef.T + self.intercept
        if scores.shape[1] == 1:  # two classes: one score, positive for classes[1]
            return self.classes[(scores[:, 0] > 0).astype(np.int64)]
        return self.classes[scores.argmax(axis=1)]

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(features) == labels))


def _record_types() -> dict[str, type]:
    """The only classes a torch file may name: rebuilt field by field, so their own
    checks (uint8 images, matching lengths) run again on load."""
    from cnn_lab.data.sources import DatasetBundle, LabelledImages
    from cnn_lab.evaluation.cam_plots import ModelMaps
    from cnn_lab.training.batching import Normalisation
    from cnn_lab.training.recipe import SplitData

    kinds = (DatasetBundle, LabelledImages, SplitData, Normalisation, ModelMaps, LinearBaseline)
    return {kind.__name__: kind for kind in kinds}


def _model_part(model: Any, where: str) -> dict[str, Any]:
    module = getattr(model, "_orig_mod", model)  # torch.compile's wrapper shares its weights
    spec = getattr(module, "build_spec", None)
    if not (isinstance(spec, dict) and {"family", "options"} <= set(spec)):
        raise TypeError(
            f"{where}: the {type(module).__name__} has no build_spec ({{'family', 'options'}}), "
            f"so it could not be rebuilt on load; build it with cnn_lab.models.build_model"
        )
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    spec = {"family": spec["family"], "options": _encode(spec["options"], _torch_leaf, where)}
    return {TAG: "model", "build_spec": spec, "state_dict": state, "training": module.training}


def _torch_leaf(value: Any, where: str) -> Any:
    import torch
    from torch import nn

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        try:
            return {TAG: "ndarray", "data": torch.from_numpy(np.ascontiguousarray(value))}
        except TypeError as err:
            raise _cannot_store(value, f"{where} ({value.dtype} array)", "a tensor") from err
    if isinstance(value, nn.Module):
        return _model_part(value, where)
    if type(value).__name__ == "BaselineFit":  # named, not imported: sklearn loads lazily
        value = LinearBaseline.from_fit(value)
    records = _record_types()
    if is_dataclass(value) and records.get(type(value).__name__) is type(value):
        parts = {
            f.name: _encode(getattr(value, f.name), _torch_leaf, f"{where}.{f.name}")
            for f in fields(value)
        }
        return {TAG: "record", "type": type(value).__name__, "fields": parts}
    raise _cannot_store(value, where, "a torch file of tensors")


def _rebuild_model(value: dict[str, Any]) -> Any:
    from cnn_lab.models import build_model

    family = value["build_spec"]["family"]
    options = _decode(value["build_spec"]["options"], _torch_decode_leaf)
    built_with = dict(options)
    if built_with.get("weights") not in (None, "none"):
        built_with["weights"] = "none"  # the saved state replaces them: no download, no file
    model = build_model(family, **built_with)
    model.load_state_dict(value["state_dict"])
    model.build_spec = {"family": family, "options": options}
    return model.train(value["training"])


def _torch_decode_leaf(kind: str, value: dict[str, Any]) -> Any:
    if kind == "ndarray":
        return value["data"].numpy()
    if kind == "model":
        return _rebuild_model(value)
    if kind == "record":
        records = _record_types()
        if value["type"] not in records:
            raise ValueError(f"the file names a type {value['type']!r} this project never stores")
        parts = {k: _decode(v, _torch_decode_leaf) for k, v in value["fields"].items()}
        return records[value["type"]](**parts)
    raise ValueError(f"unknown tagged value {kind!r}")


def to_torch_tree(value: Any) -> Any:
    """``value`` as tensors and plain containers, which ``weights_only`` loading admits."""
    return _encode(value, _torch_leaf, "value")


def from_torch_tree(tree: Any) -> Any:
    return _decode(tree, _torch_decode_leaf)


def _reason(err: Exception) -> str:
    """The first sentence of a load error: torch's and numpy's go on to suggest loading
    the file unsafely, which is the one thing not to do with a file nobody can vouch for."""
    return str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else repr(err)


class _FileDataset(AbstractVersionedDataset[Any, Any]):
    """One file per version. The value is encoded before the file is opened, so a value
    that cannot be stored leaves no file behind."""

    FORMAT = ""

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        options = deepcopy(fs_args) or {}
        if protocol == "file":
            options.setdefault("auto_mkdir", True)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **options)
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def _encode_value(self, data: Any) -> Any:
        raise NotImplementedError

    def _write(self, handle: Any, encoded: Any) -> None:
        raise NotImplementedError

    def _read(self, handle: Any) -> Any:
        raise NotImplementedError

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}

    def load(self) -> Any:
        path = get_filepath_str(self._get_load_path(), self._protocol)
        with self._fs.open(path, mode="rb") as handle:
            try:
                return self._read(handle)
            except Exception as err:
                raise DatasetError(
                    f"{path} is not a {self.FORMAT} file written by this project "
                    f"({_reason(err)}); nothing in it was run. Delete it (with its version "
                    f"folder) and rerun the node that writes it."
                ) from err

    def save(self, data: Any) -> None:
        encoded = self._encode_value(data)
        path = get_filepath_str(self._get_save_path(), self._protocol)
        with self._fs.open(path, mode="wb") as handle:
            self._write(handle, encoded)
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def _exists(self) -> bool:
        try:
            path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return bool(self._fs.exists(path))

    def _release(self) -> None:
        super()._release()
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))


class JSONValueDataset(_FileDataset):
    """Plain data as JSON: dicts, lists, tuples, str, numbers (NaN included), None, numpy
    scalars and arrays, DataFrames; each comes back as the type it was saved as."""

    FORMAT = "JSON"

    def _encode_value(self, data: Any) -> bytes:
        return to_json(data)

    def _write(self, handle: Any, encoded: bytes) -> None:
        handle.write(encoded)

    def _read(self, handle: Any) -> Any:
        return from_json(handle.read())


class TorchValueDataset(_FileDataset):
    """Plain data, tensors, numpy arrays, models (see :class:`ModelDataset`) and the
    project's data records (bundles, splits, CAM maps) in a ``torch.save`` file, loaded with
    ``weights_only=True``."""

    FORMAT = "torch (weights_only)"

    def _expected(self) -> tuple[type, ...] | None:
        """What ``save`` accepts, where narrower than anything encodable."""
        return None

    def _encode_value(self, data: Any) -> Any:
        expected = self._expected()
        if expected is not None and not isinstance(data, expected):
            names = " or ".join(kind.__name__ for kind in expected)
            raise TypeError(f"{type(self).__name__} stores a {names}, got {type(data).__name__}")
        return to_torch_tree(data)

    def _write(self, handle: Any, encoded: Any) -> None:
        import torch

        torch.save(encoded, handle)

    def _read(self, handle: Any) -> Any:
        import torch

        with warnings.catch_warnings():  # a foreign pickle's protocol: refused anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            # weights_only: the unpickler admits tensors and plain containers, no callable
            tree = torch.load(handle, map_location="cpu", weights_only=True)
        return from_torch_tree(tree)


class DatasetBundleDataset(TorchValueDataset):
    """A DatasetBundle (or a SplitData made from one): uint8 images, labels and class names
    as tensors and plain lists, rebuilt (and re-checked) on load."""

    def _expected(self) -> tuple[type, ...]:
        from cnn_lab.data.sources import DatasetBundle
        from cnn_lab.training.recipe import SplitData

        return (DatasetBundle, SplitData)


class ModelDataset(TorchValueDataset):
    """A network built by ``cnn_lab.models.build_model``, or a dict holding one (e.g.
    ``{"model", "input_size", "label"}``). Saved as its ``build_spec`` and ``state_dict``;
    loading rebuilds it with ``build_model(family, **options)`` and loads the state, so no
    class or code is read from the file."""

    def _expected(self) -> tuple[type, ...]:
        from torch import nn

        return (nn.Module, dict)


class BaselinesDataset(TorchValueDataset):
    """Fitted linear baselines (``{name: BaselineFit}``) as arrays; loads
    ``{name: LinearBaseline}``, which predicts and scores as the fitted pipeline did."""

    def _expected(self) -> tuple[type, ...]:
        return (dict,)


class ArraysDataset(_FileDataset):
    """A dict of numpy arrays as ``.npz``, read with ``allow_pickle=False``."""

    FORMAT = ".npz (no pickled objects)"

    def _encode_value(self, data: Any) -> dict[str, np.ndarray]:
        if not isinstance(data, dict) or not all(isinstance(v, np.ndarray) for v in data.values()):
            raise TypeError(
                f"ArraysDataset stores a dict of numpy arrays, got {type(data).__name__}"
            )
        if any(v.dtype.kind == "O" for v in data.values()):
            raise TypeError("ArraysDataset cannot store object arrays: they are pickles")
        return data

    def _write(self, handle: Any, encoded: dict[str, np.ndarray]) -> None:
        np.savez(handle, **encoded)

    def _read(self, handle: Any) -> dict[str, np.ndarray]:
        with np.load(handle, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}


__all__ = [
    "ArraysDataset",
    "BaselinesDataset",
    "DatasetBundleDataset",
    "JSONValueDataset",
    "LinearBaseline",
    "ModelDataset",
    "TorchValueDataset",
    "from_json",
    "from_torch_tree",
    "to_json",
    "to_torch_tree",
]
