"""Freezing a TF1 graph model held by a Session (``convert_variables_to_constants``).

TensorFlow internal used here: ``tensorflow.python.util.deprecation._PRINT_DEPRECATION_WARNINGS``
(to keep the deprecation log line of ``tf.compat.v1.graph_util.convert_variables_to_constants``
out).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .graph import FrozenGraph
from .names import ancestors, check_names_present, op_name, resolve_names, tensor_name
from .size import check_size, estimate_node_bytes, shape_attr_nbytes
from .structure import VARIABLE_SOURCE_OPS, prune_unreachable


def freeze_session(
    session: Any,
    output_names: Sequence[str],
    *,
    exclude: Sequence[str] = (),
    keep: Sequence[str] | None = None,
    input_names: Sequence[str] = (),
) -> FrozenGraph:
    """Freeze a TF1 graph model held by ``session`` (variables initialized or restored).

    Runs ``tf.compat.v1.graph_util.convert_variables_to_constants`` (pruned to the ancestors of
    the outputs) with ``keep`` as its whitelist and ``exclude`` as its blacklist; variables are
    named by op name (``"v1"``; ``"v1:0"`` is accepted). ``output_names`` and ``input_names`` may
    be op names (``"add"``) or tensor names (``"add:0"``); the FrozenGraph lists tensor names.

    Returns the FrozenGraph; raises ValueError for names not in the graph (or inputs pruned away
    because no output depends on them) and GraphTooLargeError, before reading any value, when
    the constants would exceed the 2 GiB protobuf limit.
    """
    from ..._tf import import_tensorflow

    tf = import_tensorflow()
    outputs = [tensor_name(n) for n in _as_list(output_names)]
    inputs = [tensor_name(n) for n in _as_list(input_names)]
    graph_def = session.graph.as_graph_def()
    nodes = {n.name: n for n in graph_def.node}
    if not outputs:
        raise ValueError("freeze_session: no output names given")
    missing = [t for t in outputs + inputs if op_name(t) not in nodes]
    if missing:
        raise ValueError(f"freeze_session: not in the session's graph: {missing}")

    variable_nodes = [n for n in graph_def.node if n.op in VARIABLE_SOURCE_OPS]
    aliases = {alias: n.name for n in variable_nodes for alias in (n.name, n.name + ":0")}
    known = sorted(n.name for n in variable_nodes)
    excluded = resolve_names(exclude, aliases, known, "exclude")
    wanted = None if keep is None else resolve_names(keep, aliases, known, "keep")
    frozen = [n for n in variable_nodes
              if n.name not in excluded and (wanted is None or n.name in wanted)]
    check_size(_estimate(session, nodes, outputs, frozen), "frozen graph")

    with _no_deprecation_warnings():
        frozen_def = tf.compat.v1.graph_util.convert_variables_to_constants(
            session,
            graph_def,
            [op_name(t) for t in outputs],
            variable_names_whitelist=None if wanted is None else sorted(wanted),
            variable_names_blacklist=sorted(excluded) or None,
        )
    kept = [n.name for n in frozen_def.node if n.op in VARIABLE_SOURCE_OPS]
    check_names_present(frozen_def, inputs, "freeze_session (inputs no output depends on?)")
    prune_unreachable(frozen_def, outputs, keep=inputs)
    return FrozenGraph(frozen_def, inputs, outputs, kept)


def _as_list(names: Sequence[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def _estimate(session: Any, nodes: Mapping[str, Any], outputs: list[str],
              to_freeze: list[Any]) -> int:
    """Bytes of the frozen graph: the outputs' ancestors plus the variables that become Consts.

    Variables whose shape is fully known are sized from their attrs, without reading them;
    only the others are read (through the session) to learn their size.
    """
    needed = ancestors(nodes, [op_name(t) for t in outputs])
    estimate = sum(estimate_node_bytes(nodes[name]) for name in needed)
    to_read: list[str] = []
    for n in to_freeze:
        if n.name not in needed:
            continue
        size = shape_attr_nbytes(n)
        if size is not None:
            estimate += size
        else:  # shape not fully known: ask the session for the value TF would read
            read = n.name + ("/Read/ReadVariableOp" if n.op == "VarHandleOp" else "")
            if read in nodes:
                to_read.append(read + ":0")
    if to_read:
        estimate += sum(np.asarray(v).nbytes for v in session.run(to_read))
    return estimate


@contextlib.contextmanager
def _no_deprecation_warnings() -> Iterator[None]:
    """Silence TF's 'deprecated' log lines (exception-safe, unlike deprecation.silence())."""
    from tensorflow.python.util import deprecation

    saved = getattr(deprecation, "_PRINT_DEPRECATION_WARNINGS", None)
    if saved is None:  # pragma: no cover - other TF versions
        yield
        return
    deprecation._PRINT_DEPRECATION_WARNINGS = False  # noqa: SLF001
    try:
        yield
    finally:
        deprecation._PRINT_DEPRECATION_WARNINGS = saved  # noqa: SLF001
