"""The nested input/output contract: any nest of arrays, flattened by stable paths.

A model's inputs and outputs may be an array, a scalar, or any nest of them: dict, list, tuple,
namedtuple (strings/bytes, bool, int and bfloat16 arrays included). This module is pure (numpy
only; TensorFlow results are recognised by duck typing, never imported):

* :func:`structure_of` describes a nest as JSON, so a manifest can carry it to a subprocess or
  C API runner; :func:`pack` rebuilds the nest from the description and the flat leaves.
* :func:`flatten` orders leaves as ``tf.nest.flatten`` does (dict keys sorted), so they line up
  with a traced function's flat arguments and outputs; :func:`leaf_paths` names each leaf by its
  PATH (``logits``, ``heads/1/score``, ``output_0``). Comparisons and goldens go by path, never
  by position or sort order: :func:`align` pairs two named flat lists.
* :func:`to_numpy` turns a TF result (tensors, ``SparseTensor``, ``RaggedTensor``) into numpy
  leaves (:class:`Sparse`, :class:`Ragged` keep their parts by name), or refuses a type it
  cannot compare, naming it and where it is.
* :func:`call_args` is how a nest is handed to a plain callable (a ``tf.Module``): a list or
  tuple are positional arguments, a dict keyword arguments, anything else one argument.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import byte_strings

#: Name of a top-level position, and of a lone leaf: ``output_0`` (what goldens always used).
OUTPUT, INPUT = "output", "input"


class Sparse(NamedTuple):
    """A ``tf.SparseTensor``'s value: compared part by part (``out/values``, ...)."""

    indices: np.ndarray
    values: np.ndarray
    dense_shape: np.ndarray


class Ragged(NamedTuple):
    """A ``tf.RaggedTensor``'s value: its flat values and one row_splits per ragged dimension."""

    flat_values: np.ndarray
    row_splits: tuple[np.ndarray, ...]


class NestError(TypeError):
    """A nest holds something that is not an array (or a known composite), or does not fit."""


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def sorted_keys(d: Mapping[Any, Any]) -> list[Any]:
    """Dict keys in ``tf.nest``'s order: sorted (TF refuses keys that do not sort together)."""
    try:
        return sorted(d)
    except TypeError:  # mixed key types: a stable order all the same (tf.nest would refuse)
        return sorted(d, key=lambda k: (type(k).__name__, repr(k)))


def _children(x: Any) -> list[tuple[Any, Any]] | None:
    """(path part, child) pairs of a container, in flatten order; None for a leaf."""
    if isinstance(x, (Sparse, Ragged)):
        return None
    if isinstance(x, Mapping):
        return [(k, x[k]) for k in sorted_keys(x)]
    if _is_namedtuple(x):
        return list(zip(type(x)._fields, x, strict=True))
    if isinstance(x, (list, tuple)):
        return list(enumerate(x))
    return None


def structure_of(nest: Any) -> dict[str, Any]:
    """A JSON-able description of `nest` (containers and leaf positions, no values).

    ``{"type": "leaf"}``, ``{"type": "none"}``, ``{"type": "sparse"}``, ``{"type": "ragged",
    "ragged_rank": k}``, ``{"type": "dict", "keys": [...], "items": [...]}`` (keys in flatten
    order), ``{"type": "list" | "tuple", "items": [...]}``, ``{"type": "namedtuple", "name":
    ..., "fields": [...], "items": [...]}``.
    """
    if nest is None:
        return {"type": "none"}
    if isinstance(nest, Sparse):
        return {"type": "sparse"}
    if isinstance(nest, Ragged):
        return {"type": "ragged", "ragged_rank": len(nest.row_splits)}
    if isinstance(nest, Mapping):
        keys = sorted_keys(nest)
        bad = [k for k in keys if not isinstance(k, (str, int))]
        if bad:
            raise NestError(f"dict keys must be str or int to be named by path, not {bad[0]!r}")
        return {"type": "dict", "keys": keys, "items": [structure_of(nest[k]) for k in keys]}
    if _is_namedtuple(nest):
        return {"type": "namedtuple", "name": type(nest).__name__,
                "fields": list(type(nest)._fields), "items": [structure_of(v) for v in nest]}
    if isinstance(nest, (list, tuple)):
        return {"type": type(nest).__name__ if type(nest) in (list, tuple) else "list",
                "items": [structure_of(v) for v in nest]}
    return {"type": "leaf"}


def flatten(nest: Any) -> list[Any]:
    """The leaves of `nest` in ``tf.nest.flatten`` order (None holds no leaf)."""
    return [leaf for _, leaf in _walk(nest, ())]


def _walk(nest: Any, path: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], Any]]:
    if nest is None:
        return []
    if isinstance(nest, Sparse):
        return [(path + (f,), v) for f, v in zip(Sparse._fields, nest, strict=True)]
    if isinstance(nest, Ragged):
        return [(path + ("flat_values",), nest.flat_values)] + [
            (path + ("row_splits", i), s) for i, s in enumerate(nest.row_splits)]
    kids = _children(nest)
    if kids is None:
        return [(path, nest)]
    return [pair for part, child in kids for pair in _walk(child, path + (part,))]


def _escape(part: Any) -> str:
    return str(part).replace("%", "%25").replace("/", "%2F")


def _name(path: tuple[Any, ...], prefix: str, top_sequence: bool) -> str:
    if not path:
        return f"{prefix}_0"
    head = f"{prefix}_{path[0]}" if top_sequence else _escape(path[0])
    return "/".join([head, *(_escape(p) for p in path[1:])])


def leaf_paths(structure: Mapping[str, Any] | Any, prefix: str = OUTPUT) -> list[str]:
    """The path name of each leaf, in flatten order, from a description or a nest itself.

    A lone leaf is ``output_0``; a top-level list or tuple's positions are ``output_<i>``
    (``output_1/0`` below them); dict keys and namedtuple fields are themselves (``logits``,
    ``heads/1/score``). So a flat list of outputs keeps the names goldens always had.
    """
    spec = structure if _is_spec(structure) else structure_of(structure)
    top_sequence = spec["type"] in ("list", "tuple")
    return [_name(p, prefix, top_sequence) for p in _spec_paths(spec, ())]


def _is_spec(x: Any) -> bool:
    return isinstance(x, Mapping) and isinstance(x.get("type"), str) and (
        x["type"] in _SPEC_TYPES) and set(x) <= _SPEC_KEYS


_SPEC_TYPES = {"leaf", "none", "sparse", "ragged", "dict", "list", "tuple", "namedtuple"}
_SPEC_KEYS = {"type", "keys", "items", "name", "fields", "ragged_rank"}


def _spec_paths(spec: Mapping[str, Any], path: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    kind = spec["type"]
    if kind == "leaf":
        return [path]
    if kind == "none":
        return []
    if kind == "sparse":
        return [path + (f,) for f in Sparse._fields]
    if kind == "ragged":
        return [path + ("flat_values",)] + [path + ("row_splits", i)
                                             for i in range(int(spec["ragged_rank"]))]
    parts = (spec["keys"] if kind == "dict" else spec["fields"] if kind == "namedtuple"
             else range(len(spec["items"])))
    return [p for part, item in zip(parts, spec["items"], strict=True)
            for p in _spec_paths(item, path + (part,))]


def count_leaves(structure: Mapping[str, Any]) -> int:
    """How many flat values `structure` holds."""
    return len(_spec_paths(structure, ()))


def pack(structure: Mapping[str, Any], flat: Sequence[Any]) -> Any:
    """Rebuild the nest `structure` describes from its leaves in flatten order.

    Namedtuples come back as namedtuples of the same name and fields (a class made here: the
    original class may not be importable where this runs).
    """
    flat = list(flat)
    need = count_leaves(structure)
    if len(flat) != need:
        raise NestError(f"the structure holds {need} values, got {len(flat)}")
    it = iter(flat)
    return _build(structure, it)


def _build(spec: Mapping[str, Any], it: Any) -> Any:
    kind = spec["type"]
    if kind == "leaf":
        return next(it)
    if kind == "none":
        return None
    if kind == "sparse":
        return Sparse(next(it), next(it), next(it))
    if kind == "ragged":
        flat_values = next(it)
        return Ragged(flat_values, tuple(next(it) for _ in range(int(spec["ragged_rank"]))))
    items = [_build(s, it) for s in spec["items"]]
    if kind == "dict":
        return dict(zip(spec["keys"], items, strict=True))
    if kind == "namedtuple":
        cls = collections.namedtuple(spec["name"], spec["fields"])  # type: ignore[misc]
        return cls(*items)
    return tuple(items) if kind == "tuple" else items


def present(outputs: Any) -> Any:
    """How a restored model hands outputs back: a lone array or a flat list as a list of
    arrays (as before nests), any other structure (dict, nested, namedtuple) as it is."""
    if outputs is None:
        return []
    kids = _children(outputs)
    if kids is None:
        return [outputs]
    if type(outputs) in (list, tuple) and all(_children(v) is None for _, v in kids):
        return list(outputs)
    return outputs


def named_leaves(nest: Any, prefix: str = OUTPUT) -> dict[str, Any]:
    """Path name -> leaf, in flatten order."""
    return dict(zip(leaf_paths(nest, prefix), flatten(nest), strict=True))


# ---- values ------------------------------------------------------------------------------------


def as_array(value: Any, where: str = "value") -> np.ndarray:
    """One leaf as a numpy array: TF tensors through ``.numpy()``, strings as bytes/str arrays.

    A TensorFlow string tensor reads back as an object array of bytes; it becomes a fixed-width
    bytes array (``S``), which goldens can store without pickling, unless an element ends in a
    NUL byte, which ``S`` would drop: then it stays an object array of bytes (byte_strings.py).
    Anything else numpy can only hold as objects is refused, naming `where` and its type.
    """
    if hasattr(value, "numpy") and callable(value.numpy):
        value = value.numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise NestError(f"{where} is a {type(value).__name__}, not an array ({exc})") from None
    if arr.dtype == object:
        flat = arr.reshape(-1).tolist()
        if all(isinstance(v, bytes) for v in flat):
            return byte_strings.from_list(flat, arr.shape)
        if all(isinstance(v, str) for v in flat):
            return np.array(flat, dtype=str).reshape(arr.shape)
        kinds = sorted({type(v).__name__ for v in flat})
        raise NestError(f"{where} holds Python objects ({', '.join(kinds[:3])}), not an array "
                        "of numbers or strings: it cannot be compared or stored")
    return arr


def composite_inputs(inputs: Any) -> list[str]:
    """``input/0 (RaggedTensor)`` for every leaf of `inputs` that is a TensorFlow composite
    (SparseTensor, RaggedTensor, ...): inputs are fed, stored and fingerprinted as arrays."""
    return [f"{name} ({type(leaf).__name__})" for name, leaf in named_leaves(inputs, INPUT).items()
            if _composite(leaf) is not None]


def _composite(x: Any) -> str | None:
    """'sparse', 'ragged', another TF composite's class name, or None for a plain value."""
    name = type(x).__name__
    if name in ("SparseTensor", "SparseTensorValue"):
        return "sparse"
    if name in ("RaggedTensor", "RaggedTensorValue"):
        return "ragged"
    module = type(x).__module__ or ""
    if (module.startswith(("tensorflow", "tf_keras", "keras")) and not hasattr(x, "numpy")
            and not hasattr(x, "__array__")):
        return name
    return None


def to_numpy(nest: Any, prefix: str = OUTPUT) -> Any:
    """`nest` with every leaf a numpy array (see :func:`as_array`); containers kept.

    ``SparseTensor`` -> :class:`Sparse`, ``RaggedTensor`` -> :class:`Ragged` (compared by
    value, part by part). Any other TensorFlow composite (a TensorArray, a dataset, a
    KerasTensor) is refused with its type and path.
    """
    top_sequence = isinstance(nest, (list, tuple)) and not _is_namedtuple(nest)
    return _convert(nest, (), prefix, top_sequence)


def _convert(x: Any, path: tuple[Any, ...], prefix: str, top_sequence: bool) -> Any:
    if x is None:
        return None
    kind = _composite(x)
    where = _name(path, prefix, top_sequence)
    if kind == "sparse":
        return Sparse(as_array(x.indices, where + "/indices"),
                      as_array(x.values, where + "/values"),
                      as_array(x.dense_shape, where + "/dense_shape"))
    if kind == "ragged":
        splits = tuple(as_array(s, f"{where}/row_splits/{i}")
                       for i, s in enumerate(x.nested_row_splits))
        return Ragged(as_array(x.flat_values, where + "/flat_values"), splits)
    if kind is not None:
        raise NestError(f"{where} is a {type(x).__module__}.{kind}: only arrays, tensors, "
                        "SparseTensor and RaggedTensor outputs can be compared")
    if isinstance(x, Mapping):
        return {k: _convert(x[k], path + (k,), prefix, top_sequence) for k in sorted_keys(x)}
    if _is_namedtuple(x):
        return type(x)(*(_convert(v, path + (f,), prefix, top_sequence)
                         for f, v in zip(type(x)._fields, x, strict=True)))
    if isinstance(x, (list, tuple)):
        items = [_convert(v, path + (i,), prefix, top_sequence) for i, v in enumerate(x)]
        return tuple(items) if isinstance(x, tuple) else items
    return as_array(x, where)


def flat_arrays(nest: Any, prefix: str = OUTPUT) -> tuple[list[str], list[np.ndarray]]:
    """(path names, numpy leaves) of any model result, in flatten order."""
    converted = to_numpy(nest, prefix)
    return leaf_paths(converted, prefix), flatten(converted)


def leaf_specs(nest: Any, prefix: str = INPUT) -> list[dict[str, Any]]:
    """Per leaf, in flatten order: its path, dtype name and shape (JSON-able)."""
    names, arrays = flat_arrays(nest, prefix)
    return [{"path": n, "dtype": a.dtype.name if a.dtype.kind not in "SUO" else
             ("unicode" if a.dtype.kind == "U" else "string"), "shape": list(a.shape)}
            for n, a in zip(names, arrays, strict=True)]


def call_args(inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """How a nest is passed to a plain callable (a tf.Module's ``__call__``).

    A list or tuple (not a namedtuple) are positional arguments, a dict keyword arguments,
    None no argument, anything else (an array, a namedtuple) one argument.
    """
    if inputs is None:
        return (), {}
    if isinstance(inputs, Mapping):
        bad = [k for k in inputs if not isinstance(k, str)]
        if bad:
            raise NestError(f"dict inputs become keyword arguments; key {bad[0]!r} is not a str")
        return (), dict(inputs)
    if isinstance(inputs, (list, tuple)) and not _is_namedtuple(inputs):
        return tuple(inputs), {}
    return (inputs,), {}


# ---- comparing by path ---------------------------------------------------------------------------


class Alignment(NamedTuple):
    """Two named flat lists paired by path: the shared paths and what only one side has."""

    names: list[str]
    expected: list[Any]
    actual: list[Any]
    only_expected: list[str]
    only_actual: list[str]


def align(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> Alignment:
    """Pair `expected` and `actual` (path -> array) by path, in `expected`'s order."""
    names = [n for n in expected if n in actual]
    return Alignment(names, [expected[n] for n in names], [actual[n] for n in names],
                     [n for n in expected if n not in actual],
                     [n for n in actual if n not in expected])


def describe_difference(alignment: Alignment) -> str | None:
    """One line saying which paths only one side has, or None when both have the same."""
    parts = []
    if alignment.only_expected:
        parts.append(f"missing output(s) {', '.join(alignment.only_expected[:8])}")
    if alignment.only_actual:
        parts.append(f"unexpected output(s) {', '.join(alignment.only_actual[:8])}")
    return "; ".join(parts) or None
