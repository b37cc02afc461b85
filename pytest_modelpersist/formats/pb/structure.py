"""What a frozen graph still holds: variable ops, the calls that reach them, and the check of a
freeze (no variable op left but the ones excluded on purpose)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .names import op_name

if TYPE_CHECKING:  # pragma: no cover
    from tensorflow.core.framework.graph_pb2 import GraphDef

#: Op types that hold, read or write a variable. A fully frozen graph contains none of them.
#: (``Placeholder`` nodes of dtype ``resource`` count too: that is what TF's own converter leaves
#: for a variable it was told not to convert.)
VARIABLE_OP_TYPES = frozenset(
    {
        "VarHandleOp", "_VarHandlesOp", "ReadVariableOp", "_ReadVariablesOp", "VariableV2",
        "Variable", "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp", "Assign",
        "VarIsInitializedOp", "IsVariableInitialized", "ResourceGather", "ResourceGatherNd",
        "ResourceScatterUpdate",
    }
)

#: The op types that *are* a variable (the others read or write one).
VARIABLE_SOURCE_OPS = ("VarHandleOp", "VariableV2", "Variable")
_DT_RESOURCE = 20  # types_pb2.DT_RESOURCE, without importing TensorFlow


def graph_variable_ops(graph_def: GraphDef) -> list[str]:
    """Names of main-graph nodes that hold/read/write variables or call functions that do.

    Covers variable ops (see VARIABLE_OP_TYPES), resource placeholders and any node that
    calls a library function containing such ops ((Stateful)PartitionedCall, If, While...).
    Returns node names in graph order; empty for a fully frozen graph.
    """
    functions = {f.signature.name: f for f in graph_def.library.function}
    memo: dict[str, bool] = {}

    def function_has_variables(name: str, stack: frozenset[str] = frozenset()) -> bool:
        if name in memo:
            return memo[name]
        if name not in functions or name in stack:
            return False
        stack = stack | {name}
        found = any(
            is_variable_node(n) or any(function_has_variables(f, stack) for f in called(n))
            for n in functions[name].node_def
        )
        memo[name] = found
        return found

    return [
        n.name
        for n in graph_def.node
        if is_variable_node(n) or any(function_has_variables(f) for f in called(n))
    ]


def unexpected_variable_ops(graph_def: GraphDef, kept_variables: Iterable[str]) -> list[str]:
    """The structural check of a freeze: variable ops left that nobody asked to keep.

    A variable in ``kept_variables`` (excluded from the freeze, ``"v"`` or ``"v:0"``) and the
    nodes reading it directly are expected; every other node of :func:`graph_variable_ops` is
    returned, in graph order. Empty means the freeze converted everything it should have.
    """
    kept = {op_name(k) for k in kept_variables}
    nodes = {n.name: n for n in graph_def.node}

    def on_purpose(name: str) -> bool:
        node = nodes.get(name)
        inputs = [op_name(i) for i in (node.input if node is not None else ())]
        return name in kept or any(i in kept for i in inputs)

    return [n for n in graph_variable_ops(graph_def) if not on_purpose(n)]


def is_variable_node(node: Any) -> bool:
    """True for a variable op or a resource Placeholder (a variable left unconverted)."""
    if node.op in VARIABLE_OP_TYPES:
        return True
    return node.op == "Placeholder" and node.attr["dtype"].type == _DT_RESOURCE


def called(node: Any) -> list[str]:
    """Library functions a node calls: through func attrs (PartitionedCall f, If branches, While
    cond/body, ...) or as its op type (legacy direct call)."""
    names = [node.op]
    for attr in node.attr.values():
        if attr.HasField("func"):
            names.append(attr.func.name)
        elif attr.HasField("list"):
            names.extend(f.name for f in attr.list.func)
    return names


def prune_unreachable(graph_def: GraphDef, outputs: Iterable[str],
                      keep: Iterable[str] = ()) -> list[str]:
    """Drop, in place, every node no output depends on, and every library function no
    remaining node calls; returns the dropped node names.

    A frozen graph is run by fetching its outputs, so a node outside their ancestry (data or
    control) never runs there; but another consumer of the file (a C API program running every
    node, a tool converting it) would run it, and a screen would have to reason about it.
    ``keep`` names nodes to keep anyway (feedable inputs no output uses).
    """
    from .names import ancestors

    nodes = {n.name: n for n in graph_def.node}
    reachable = ancestors(nodes, [op_name(o) for o in [*outputs, *keep]])
    dropped = [n.name for n in graph_def.node if n.name not in reachable]
    if dropped:
        kept_nodes = [n for n in graph_def.node if n.name in reachable]
        del graph_def.node[:]
        graph_def.node.extend(kept_nodes)
    functions = {f.signature.name: f for f in graph_def.library.function}
    used: set[str] = set()
    stack = [f for n in graph_def.node for f in called(n) if f in functions]
    while stack:
        name = stack.pop()
        if name not in used:
            used.add(name)
            stack += [f for n in functions[name].node_def for f in called(n) if f in functions]
    if len(used) < len(functions):
        kept_functions = [f for f in graph_def.library.function if f.signature.name in used]
        del graph_def.library.function[:]
        graph_def.library.function.extend(kept_functions)
        gradients = [g for g in graph_def.library.gradient if g.function_name in used]
        del graph_def.library.gradient[:]
        graph_def.library.gradient.extend(gradients)
    return dropped
