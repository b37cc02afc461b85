"""What a file holds: :class:`SavedVariables` (name -> shape, dtype, reader, aliases).

Built from any TensorFlow checkpoint by :func:`checkpoint_variables`; the HDF5 formats build
their own from the file's layer groups (legacy names from :func:`h5_layer_weight_names`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import compat
from .object_paths import checkpoint_object_paths

#: Suffix of a value's key in an object-based (TF2) checkpoint.
VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def _dtype_name(dtype: Any) -> str:
    return str(getattr(getattr(dtype, "base_dtype", dtype), "name", dtype))


@dataclass
class SavedVariables:
    """The variables a file holds: name -> (shape, dtype), a reader, and each entry's aliases.

    `source` names the file in messages. `aliases` lists other names an entry is known by (a
    SavedModel variable's object paths besides its variable name, say).
    """

    entries: dict[str, tuple[tuple[int, ...], Any]]
    read: Callable[[str], np.ndarray]
    source: str = "the file"
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def names_of(self, name: str) -> tuple[str, ...]:
        return (name, *self.aliases.get(name, ()))

    def lookup(self) -> dict[str, str]:
        """Every name and alias -> the entry's name (names win over aliases)."""
        table: dict[str, str] = {}
        for name in self.entries:
            for alias in self.aliases.get(name, ()):
                table.setdefault(alias, name)
        table.update({name: name for name in self.entries})
        return table


def checkpoint_variables(prefix: str, *, source: str | None = None,
                         group_by_variable_name: bool = False) -> SavedVariables:
    """The variables of any TensorFlow checkpoint (TF1 name-based or TF2 object-based).

    Object-based keys lose their ``/.ATTRIBUTES/VARIABLE_VALUE`` suffix
    (``model/_operations/1/_kernel``). With `group_by_variable_name` (a SavedModel's
    ``variables/variables``, where Keras' export tracks each variable in several lists), an
    entry is named by the variable's own name (``enc/kernel``) and its object paths are aliases.
    """
    from .._tf import import_tensorflow

    tf = import_tensorflow()
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    keys: dict[str, str] = {}  # entry name -> checkpoint key
    aliases: dict[str, tuple[str, ...]] = {}
    full_names: dict[str, str] = {}
    other_paths: dict[str, tuple[str, ...]] = {}
    if OBJECT_GRAPH_KEY in shapes:
        full_names = _checkpoint_full_names(reader)
        other_paths = checkpoint_object_paths(reader)
    grouped: dict[str, list[str]] = {}
    for key in sorted(shapes):
        if key == OBJECT_GRAPH_KEY:
            continue
        path = key[: -len(VALUE_SUFFIX)] if key.endswith(VALUE_SUFFIX) else key
        full = full_names.get(key, "")
        if group_by_variable_name and full and path.split("/", 1)[0] in _EXPORT_LISTS:
            grouped.setdefault(full, []).append(key)
            continue
        keys[path] = key
        if other_paths.get(key):
            # The same variable by its other object paths: a trained model's kernel is saved
            # under the optimizer's list (the first path found), a fresh model has no optimizer.
            aliases[path] = tuple(p for p in other_paths[key] if p != path)
    for full, group in grouped.items():
        # One variable appears once per list (`variables/3`, `_all_variables/0`); two keys in
        # the same list are two variables sharing a name: those stay apart, by object path.
        lists = [k.split("/", 1)[0] for k in group]
        same = {(tuple(shapes[k]), _dtype_name(dtypes[k])) for k in group}
        if len(set(lists)) == len(lists) and len(same) == 1 and full not in keys:
            keys[full] = group[0]
            aliases[full] = tuple(k[: -len(VALUE_SUFFIX)] for k in group)
        else:
            keys.update({k[: -len(VALUE_SUFFIX)]: k for k in group})
    entries = {name: (tuple(shapes[k]), dtypes[k]) for name, k in keys.items()}
    return SavedVariables(entries, lambda name: reader.get_tensor(keys[name]),
                          source=source or prefix, aliases=aliases)


# Lists in which Keras' `model.export` (an ExportArchive) tracks the same variables.
_EXPORT_LISTS = {"variables", "_all_variables", "trainable_variables", "non_trainable_variables"}


def _checkpoint_full_names(reader: Any) -> dict[str, str]:
    """Object-based checkpoint key -> the variable's own name, from the object graph."""
    try:
        from tensorflow.core.protobuf import trackable_object_graph_pb2

        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor(OBJECT_GRAPH_KEY))
    except Exception:  # an unreadable object graph: entries keep their object paths
        return {}
    return {attr.checkpoint_key: attr.full_name for node in graph.nodes
            for attr in node.attributes if attr.full_name}


def h5_layer_weight_names(layer_name: str, weight_paths: Sequence[str]) -> list[str]:
    """Names of one layer's weights in a legacy HDF5 file: ``<layer>/<weight>`` (``enc/kernel``).

    The weight part is the last component of Keras' weight path (Keras 2's ``:0`` dropped);
    when two weights of the layer share it (a nested model as a layer), the whole path is used.
    """
    return compat.layer_weight_names(layer_name, weight_paths)

