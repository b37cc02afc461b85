"""The frozen-graph (``.pb``) machinery: freeze models, write, read, screen and run GraphDefs.

The frozen-graph format is the oldest TensorFlow deployment artefact: one protobuf that holds
the graph and every weight as a ``Const`` node, loaded with ``import_graph_def`` and run by
tensor name (``"x:0"``) from any language binding. One concern per module:

* ``freeze_v2`` / ``freeze_v1``: freezing a ConcreteFunction / a TF1 Session's graph;
* ``constants``: TensorFlow's variables -> constants rewrite, with one-copy Const filling;
* ``graph``: :class:`FrozenGraph`, the result; ``graph_io``: reading and writing GraphDef files;
* ``structure``: variable ops left in a graph, and the structural check of a freeze;
* ``screen``: the op screen derived from TensorFlow's op registry; ``saved``: screening
  SavedModel and ``.meta`` graphs (their own saver and asset ops let through);
* ``run``: running a GraphDef in a Session (under the persist timeout);
* ``size``: size estimates and the 2 GiB protobuf limit; ``names``: tensor/node name helpers.

TensorFlow is imported inside the functions, never when this package is imported. The format
adapter (``pb`` in ``--persist-formats``) is ``formats/frozen.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .freeze_v1 import freeze_session
from .freeze_v2 import freeze_function
from .graph import FrozenGraph
from .graph_io import TEXT_SUFFIXES, read_graph_def, write_graph_def
from .run import run_graph_def
from .saved import screen_meta_graph, screen_saved_model
from .screen import (
    UNSAFE_OP_TYPES,
    UnsafeGraphError,
    screen_graph_def,
    unsafe_op_types,
    unsafe_ops,
)
from .size import GRAPHDEF_LIMIT, GraphTooLargeError, estimate_graph_bytes, estimate_node_bytes
from .structure import (
    VARIABLE_OP_TYPES,
    graph_variable_ops,
    prune_unreachable,
    unexpected_variable_ops,
)

__all__ = [
    "GRAPHDEF_LIMIT",
    "TEXT_SUFFIXES",
    "UNSAFE_OP_TYPES",
    "VARIABLE_OP_TYPES",
    "FrozenGraph",
    "GraphTooLargeError",
    "UnsafeGraphError",
    "estimate_graph_bytes",
    "estimate_node_bytes",
    "freeze_function",
    "freeze_model",
    "freeze_session",
    "graph_variable_ops",
    "prune_unreachable",
    "read_graph_def",
    "run_graph_def",
    "screen_graph_def",
    "screen_meta_graph",
    "screen_saved_model",
    "unexpected_variable_ops",
    "unsafe_op_types",
    "unsafe_ops",
    "write_graph_def",
]


def freeze_model(model: Any, inputs: Any = None, *, keep: Sequence[str] | None = None,
                 exclude: Sequence[str] = (), outputs: Sequence[str] | None = None) -> FrozenGraph:
    """Freeze any model kind: a TF1 GraphModel through its session (`outputs` default to its
    own), a Keras model or tf.Module through its concrete function for `inputs`."""
    from ...models import GraphModel, concrete_function

    if isinstance(model, GraphModel):
        return freeze_session(model.session, list(outputs or model.output_names), keep=keep,
                              exclude=exclude, input_names=() if outputs else model.input_names)
    return freeze_function(concrete_function(model, inputs), keep=keep, exclude=exclude)
