"""Freezing a tf.function ConcreteFunction (Keras model, tf.Module) into a GraphDef.

Why not ``convert_variables_to_constants_v2``: it spends most of its time building a *new*
ConcreteFunction from the frozen GraphDef (``_construct_concrete_function`` ->
``wrap_function.function_from_graph_def``), which writing a ``.pb`` never needs.
:func:`freeze_function` runs the same TF conversion machinery (Grappler function inlining, then
``_replace_variables_by_constants``, see constants.py) and stops at the GraphDef. TensorFlow
internals used here (private, checked against TF 2.21): ``convert_to_constants``'
``_run_inline_graph_optimization`` and ``_TensorData``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .constants import replace_variables_by_constants
from .graph import FrozenGraph
from .names import check_names_present, resolve_names, strip_output
from .size import check_size, estimate_graph_bytes, variable_nbytes
from .structure import prune_unreachable

if TYPE_CHECKING:  # pragma: no cover
    from tensorflow.core.framework.graph_pb2 import GraphDef


@dataclass
class _Captures:
    """A function's captured inputs, split into variables and constants (by capture index)."""

    variables: list[tuple[int, Any, Any, str]]  # (index, variable, placeholder, name)
    constants: list[tuple[int, Any, Any]]  # (index, external value, placeholder)


def freeze_function(
    concrete_fn: Any,
    *,
    exclude: Sequence[str] = (),
    keep: Sequence[str] | None = None,
) -> FrozenGraph:
    """Freeze a tf.function ConcreteFunction (Keras model or tf.Module) into a GraphDef.

    ``exclude`` names variables NOT to convert (deny list); ``keep``, when given, names the
    only variables to convert (allow list). A variable is named by its TF name with or without
    ``:0`` (Keras 3: the variable's ``path``, ``"dense/kernel"``) or by the capture placeholder
    of the function graph. An unknown name is a ValueError. A variable left unconverted becomes a
    ``VarHandleOp`` (node named after the variable when that name is free, ``shared_name`` the
    variable's name), so the graph says which value it needs.

    A ``tf.function`` with an ``input_signature`` is accepted too (its concrete function is used).

    Returns a FrozenGraph whose inputs are the function's argument placeholders (not the
    captured resource handles) and whose outputs are its flattened structured outputs, in order.
    Raises GraphTooLargeError, before copying any weight, when the constants would not fit in
    one protobuf.
    """
    from ..._tf import import_tensorflow

    tf = import_tensorflow()
    from tensorflow.python.framework import convert_to_constants as c2c

    fn = _concrete(concrete_fn)
    captures = _split_captures(fn, tf)
    convert = _to_convert(captures, exclude, keep)

    # size check, from shapes: before any value is read or copied
    estimate = estimate_graph_bytes(fn.graph.as_graph_def())
    estimate += sum(variable_nbytes(var) for _, var, _, _ in convert)
    estimate += sum(int(np.prod(ext.shape, dtype=np.int64)) * ext.dtype.size
                    for _, ext, _ in captures.constants)
    check_size(estimate, "frozen graph")

    # Grappler function inlining (what convert_variables_to_constants_v2 does first)
    graph_def = c2c._run_inline_graph_optimization(  # noqa: SLF001
        fn, lower_control_flow=True, aggressive_inlining=False
    )
    frozen_def = _fill_constants(graph_def, convert, captures.constants, tf)

    converted = {c[3] for c in convert}
    kept: list[str] = []
    for _, var, internal, name in captures.variables:
        if name not in converted:
            kept.append(name)
            _placeholder_to_var_handle(frozen_def, internal.op.name, name, var)

    n_args = len(fn.inputs) - len(fn.captured_inputs)
    inputs = [t.name for t in fn.inputs[:n_args]]
    outputs = [t.name for t in fn.outputs[: len(tf.nest.flatten(fn.structured_outputs))]]
    check_names_present(frozen_def, inputs + outputs, "freeze_function")
    prune_unreachable(frozen_def, outputs, keep=inputs)
    return FrozenGraph(frozen_def, inputs, outputs, kept)


def _to_convert(captures: _Captures, exclude: Sequence[str],
                keep: Sequence[str] | None) -> list[tuple[int, Any, Any, str]]:
    """The captured variables to turn into constants: in ``keep`` (if given), not excluded."""
    aliases: dict[str, str] = {}  # any accepted spelling -> variable name
    for _, var, internal, name in captures.variables:
        for alias in (name, var.name, internal.op.name, internal.name):
            aliases.setdefault(alias, name)
    known = sorted({name for *_, name in captures.variables})
    excluded = resolve_names(exclude, aliases, known, "exclude")
    wanted = None if keep is None else resolve_names(keep, aliases, known, "keep")
    return [c for c in captures.variables
            if c[3] not in excluded and (wanted is None or c[3] in wanted)]


def _concrete(concrete_fn: Any) -> Any:
    """The ConcreteFunction itself, or the one of a tf.function with an input_signature."""
    fn = concrete_fn
    if not hasattr(fn, "captured_inputs") and hasattr(fn, "get_concrete_function"):
        fn = fn.get_concrete_function()
    if not hasattr(fn, "graph") or not hasattr(fn, "captured_inputs"):
        raise TypeError(f"freeze_function needs a ConcreteFunction, got {type(concrete_fn)!r}")
    return fn


def _split_captures(fn: Any, tf: Any) -> _Captures:
    """Which capture is which variable; ValueError for a captured non-variable resource."""
    by_handle = {id(v.handle): v for v in fn.graph.variables}
    found = _Captures([], [])
    # (external value, internal placeholder), in input order
    for idx, (external, internal) in enumerate(fn.graph.captures):
        var = by_handle.get(id(external))
        if var is not None:
            found.variables.append((idx, var, internal, strip_output(var.name)))
        elif getattr(external, "dtype", None) == tf.resource:
            raise ValueError(
                f"freeze_function: the function captures resource {internal.name!r} that is not "
                "a variable (a lookup table, iterator, ...); it cannot be turned into a constant"
            )
        else:
            found.constants.append((idx, external, internal))
    return found


def _fill_constants(graph_def: GraphDef, variables: list[tuple[int, Any, Any, str]],
                    constants: list[tuple[int, Any, Any]], tf: Any) -> GraphDef:
    """``graph_def`` with the given variables and captured constants turned into Consts."""
    from tensorflow.python.framework import convert_to_constants as c2c

    tensor_data: dict[str, Any] = {}
    with _eager(tf):
        for idx, var, internal, _ in variables:
            tensor_data[internal.op.name] = c2c._TensorData(  # noqa: SLF001
                numpy=_as_numpy(var.value()), dtype=var.dtype.as_datatype_enum, index=idx
            )
        for idx, external, internal in constants:
            value = _as_numpy(external)
            tensor_data[internal.op.name] = c2c._TensorData(  # noqa: SLF001
                numpy=value, dtype=tf.as_dtype(value.dtype).as_datatype_enum, index=idx
            )
        return replace_variables_by_constants(graph_def, tensor_data)


def _as_numpy(tensor: Any) -> np.ndarray:
    """An eager tensor's value as numpy, without the extra copy ``.numpy()`` makes.

    ``np.asarray`` goes through ``EagerTensor.__array__``, which hands back the array
    ``_numpy()`` builds; ``.numpy()`` copies that array once more. (Tests replace this
    function to prove no value is read before the size check.)
    """
    return np.asarray(tensor)


@contextlib.contextmanager
def _eager(tf: Any) -> Iterator[None]:
    """Read variable values eagerly even when called under a tf.Graph().as_default()."""
    with tf.init_scope():
        if not tf.executing_eagerly():
            raise RuntimeError("freeze_function needs eager execution to read variable values")
        yield


def _placeholder_to_var_handle(
    graph_def: GraphDef, node_name: str, var_name: str, var: Any
) -> None:
    """Turn the resource Placeholder of an unconverted variable into a VarHandleOp.

    The node is renamed to the variable's name when no other node has it (inputs rewired).
    """
    names = {n.name for n in graph_def.node}
    new_name = var_name if var_name not in names else node_name
    for node in graph_def.node:
        if node.name == node_name:
            node.Clear()
            node.name = new_name
            node.op = "VarHandleOp"
            node.attr["dtype"].type = var.dtype.as_datatype_enum
            node.attr["shape"].shape.CopyFrom(var.shape.as_proto())
            node.attr["shared_name"].s = var_name.encode()
            node.attr["container"].s = b""
            node.attr["allowed_devices"].list.SetInParent()
        elif new_name != node_name:
            for i, inp in enumerate(node.input):
                ctrl = inp.startswith("^")
                base = inp[1:] if ctrl else inp
                head, sep, tail = base.rpartition(":")
                src, suffix = (head, sep + tail) if sep and tail.isdigit() else (base, "")
                if src == node_name:
                    node.input[i] = ("^" if ctrl else "") + new_name + suffix
