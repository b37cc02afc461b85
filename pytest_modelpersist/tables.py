"""Lookup tables (StringLookup, IntegerLookup, TextVectorization vocabularies) as state.

A lookup table is not a variable: checkpoints and weights files may leave it out (an adapted
`TextVectorization` loses its vocabulary in `save_weights`, `tf.train.Checkpoint` and legacy
HDF5). So a save records each table's fingerprint (entries, CRC-32 of its sorted keys and
values) in the manifest, and a restore compares the restored model's tables with them: a table
that did not come back is reported by name, like a variable that was not restored.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._tf import import_tensorflow


def _lookup_interface() -> Any:
    from tensorflow.python.ops import lookup_ops

    return lookup_ops.LookupInterface


def find_tables(model: Any) -> dict[str, Any]:
    """Name -> lookup table the model computes with, in a deterministic order.

    Keras: each layer's ``lookup_table`` (``text_vectorization/lookup_table``; a
    TextVectorization's inner StringLookup is found as a layer too); the adapt-time counters
    are not part of inference. tf.Module: every table by attribute path. Others: none.
    """
    from .models import GRAPH, KERAS_KINDS, MODULE, describe

    kind = describe(model).kind
    if kind == GRAPH or kind not in (*KERAS_KINDS, MODULE) or "tensorflow" not in _loaded():
        return {}
    interface = _lookup_interface()
    found: dict[str, Any] = {}
    if kind in KERAS_KINDS:  # Keras 2's lookup layers keep their table under the same name
        for layer in model._flatten_layers(include_self=False):
            table = vars(layer).get("lookup_table")
            if isinstance(table, interface) and id(table) not in map(id, found.values()):
                found[f"{layer.name}/lookup_table"] = table
        return found
    try:
        pairs = model._flatten(predicate=lambda v: isinstance(v, interface), with_path=True)
    except (AttributeError, TypeError):
        return {}
    for path, table in pairs:
        if id(table) not in map(id, found.values()):
            found["/".join(str(p) for p in path)] = table
    return found


#: Op types that create a lookup table in a TF1 graph.
TABLE_OPS = frozenset({"HashTable", "HashTableV2", "MutableHashTable", "MutableHashTableV2",
                       "MutableHashTableOfTensors", "MutableHashTableOfTensorsV2",
                       "MutableDenseHashTable", "MutableDenseHashTableV2"})


def graph_tables(graph_model: Any) -> list[str]:
    """Names of the table ops of a TF1 graph model."""
    return [op.name for op in graph_model.graph.get_operations() if op.type in TABLE_OPS]


def _loaded() -> set[str]:
    import sys

    return {m.split(".")[0] for m in list(sys.modules)}


def fingerprint(table: Any) -> dict[str, Any]:
    """{"entries": n, "crc32": ...} of a table's contents, whatever order it exports them in."""
    try:
        exported = table.export()
    except Exception as exc:  # an uninitialized table (legacy HDF5 loses the init): say so
        if type(exc).__name__ != "FailedPreconditionError":
            raise
        return {"entries": 0, "crc32": "uninitialized"}
    keys, values = (np.asarray(t.numpy() if hasattr(t, "numpy") else t) for t in exported)
    order = np.argsort(keys, kind="stable") if keys.size else np.arange(0)
    keys, values = keys[order], values[order]

    def raw(a: np.ndarray) -> bytes:
        if a.dtype == object:
            return b"\0".join(v if isinstance(v, bytes) else str(v).encode() for v in a.ravel())
        return np.ascontiguousarray(a).tobytes()

    return {"entries": int(keys.size), "crc32": f"{zlib.crc32(raw(keys) + b'|' + raw(values)):08x}"}


def fingerprints(model: Any) -> list[dict[str, Any]]:
    """Each table's name and fingerprint, in :func:`find_tables` order (for the manifest)."""
    return [{"name": name, **fingerprint(table)} for name, table in find_tables(model).items()]


def accountable(model: Any) -> bool:
    """True for models whose tables :func:`find_tables` can list (Keras models, tf.Modules)."""
    from .models import KERAS_KINDS, MODULE, describe

    kind = describe(model).kind
    return kind in KERAS_KINDS or (kind == MODULE and hasattr(model, "_flatten"))


def unrestored_tables(model: Any, saved: list[Mapping[str, Any]]) -> list[str]:
    """Tables of the restored `model` whose contents differ from the saved fingerprints.

    Tables are paired by position (a rebuilt model's layer names differ: ``string_lookup_1``);
    each entry names the saved table and says what the restored one holds.
    """
    now = fingerprints(model)
    problems = []
    if len(now) != len(saved):
        return [f"the saved model had {len(saved)} lookup table(s) "
                f"({', '.join(s['name'] for s in saved)}), the restored one has {len(now)}"]
    for was, got in zip(saved, now, strict=True):
        if (was["entries"], was["crc32"]) != (got["entries"], got["crc32"]):
            held = ("is not initialized" if got["crc32"] == "uninitialized" else
                    f"holds {got['entries']}" + (", different ones" if
                                                 was["entries"] == got["entries"] else ""))
            problems.append(f"lookup table {was['name']} (saved with {was['entries']} entries; "
                            f"the restored one {held})")
    return problems


def table_captures(model: Any) -> dict[int, tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """id(resource handle) -> (name, keys, values, default value), read eagerly.

    How a traced function's captured tables are recognised and copied into a TF1 graph.
    """
    found = {}
    for name, table in find_tables(model).items():
        keys, values = table.export()
        default: Any = getattr(table, "default_value", None)
        if default is None:
            default = getattr(table, "_default_value", None)
        default = default.numpy() if hasattr(default, "numpy") else np.asarray(default)
        found[id(table.resource_handle)] = (name, keys.numpy(), values.numpy(), default)
    return found


def graph_table(name: str, keys: np.ndarray, values: np.ndarray, default: np.ndarray) -> Any:
    """A StaticHashTable in the current (TF1) graph holding these contents (graph constants).

    Its initializer joins the graph's TABLE_INITIALIZERS, run by whoever restores the graph.
    """
    tf = import_tensorflow()
    initializer = tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values))
    scope = "".join(c if c.isalnum() or c in "_." else "_" for c in name)
    return tf.lookup.StaticHashTable(initializer, tf.constant(default), name=f"table_{scope}")
