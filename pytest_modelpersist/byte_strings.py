"""Byte strings that end in NUL bytes, kept exactly in memory and in ``.npz`` files.

numpy's fixed-width bytes (dtype ``S``) drop trailing NULs when an element is read:
``np.array([b"ab\\x00"])[0] == b"ab"``. Binary strings end in NULs often (a serialized
``tf.train.Example`` whose last float is 0.0 ends in four), so the plugin holds a string array
with such an element as an object array of ``bytes`` (exact), and every other string array as
``S`` (compact, and how goldens always stored them). An object array cannot go into an ``.npz``
without pickling, which runs code when read; in files, an exact array is stored as ``S`` with
one 0x01 byte appended to each element (no element then ends in NUL) under its name plus
``SUFFIX``. Numpy only: the subprocess runners and goldens use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

SUFFIX = ".exact-bytes"  # an npz member holding an exact bytes array, each element + b"\x01"
DTYPE_NAME = "bytes_exact"  # how a golden sidecar names such an output's dtype


def is_exact(arr: np.ndarray) -> bool:
    """True for the exact form: an object array (every element is bytes by construction)."""
    return arr.dtype == object


def from_list(values: list[bytes], shape: tuple[int, ...]) -> np.ndarray:
    """`values` as ``S`` when numpy keeps them whole, else as the exact object array."""
    if not any(v.endswith(b"\x00") for v in values):
        return np.array(values, dtype=bytes).reshape(shape) if values else np.zeros(shape, "S1")
    exact = np.empty(len(values), dtype=object)
    exact[:] = values
    return exact.reshape(shape)


def encode(arr: np.ndarray) -> np.ndarray:
    """The exact array `arr` as ``S`` with b"\\x01" after each element (see the module doc)."""
    marked = [v + b"\x01" for v in arr.reshape(-1).tolist()]
    return np.array(marked, dtype=bytes).reshape(arr.shape) if marked else np.zeros(arr.shape, "S1")


def decode(arr: np.ndarray) -> np.ndarray:
    """The inverse of `encode`."""
    values = [bytes(v)[:-1] for v in arr.reshape(-1).tolist()]
    exact = np.empty(len(values), dtype=object)
    exact[:] = values
    return exact.reshape(arr.shape)


def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """npz members for `arrays`: exact ones encoded under ``name + SUFFIX``."""
    return {(name + SUFFIX if is_exact(a) else name): (encode(a) if is_exact(a) else a)
            for name, a in arrays.items()}


def unpack(npz: Any) -> dict[str, np.ndarray]:
    """name -> array from an opened npz written with `pack` (others read as they are)."""
    out = {}
    for member in npz.files:
        if member.endswith(SUFFIX):
            out[member[: -len(SUFFIX)]] = decode(npz[member])
        else:
            out[member] = npz[member]
    return out
