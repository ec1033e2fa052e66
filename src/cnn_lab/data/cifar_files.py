"""CIFAR's python batches, read without letting them run code.

The official ``cifar-10-batches-py`` / ``cifar-100-python`` files are pickles by format,
so reading one with :func:`pickle.load` would run whatever a replaced file asks for. A
published-md5 check would refuse any file that is not byte-for-byte the official one
(also a correct re-export or a small test copy), so this reader restricts the unpickler
instead: a batch may only name numpy's array and dtype reconstruction and a few builtin
containers; anything else (``os.system``, ``builtins.eval``, any class) stops the read
before it is called.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

# What a CIFAR batch written by numpy (Python 2 or 3, any pickle protocol) refers to.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes in Python 3 pickles of protocol < 3
    ("builtins", "bytearray"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
}


class UnsafeCifarFile(pickle.UnpicklingError):
    """A CIFAR file asked for something other than arrays and plain data."""


class _ArraysOnly(pickle.Unpickler):
    def __init__(self, handle: Any, path: Path) -> None:
        super().__init__(handle, encoding="latin1")  # Python 2 str inside the official files
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise UnsafeCifarFile(
                f"{self._path} asks to load {module}.{name}, which a CIFAR batch never needs; "
                f"refused without running it. Replace the file with the official one "
                f"(delete the folder and set download: true)."
            )
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> dict[str, Any]:
    """One CIFAR python batch or meta file as a dict (numpy arrays, lists, str)."""
    with path.open("rb") as handle:
        content = _ArraysOnly(handle, path).load()
    if not isinstance(content, dict):
        raise UnsafeCifarFile(f"{path} is not a CIFAR batch (a {type(content).__name__})")
    return content
