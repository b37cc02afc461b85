"""Tensor and node names in a GraphDef: ``"x:0"`` vs ``"x"`` vs ``"^x"``, and name lookups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from tensorflow.core.framework.graph_pb2 import GraphDef


def strip_output(name: str) -> str:
    """'dense/kernel:0' -> 'dense/kernel'."""
    head, sep, tail = name.rpartition(":")
    return head if sep and tail.isdigit() else name


def op_name(name: str) -> str:
    """The node a NodeDef input or tensor name refers to ('^a' and 'a:1' -> 'a')."""
    return strip_output(name[1:] if name.startswith("^") else name)


def tensor_name(name: str) -> str:
    """A tensor name: an op name means its output 0 ('add' -> 'add:0')."""
    head, sep, tail = name.rpartition(":")
    return name if sep and tail.isdigit() else name + ":0"


def resolve_names(
    names: Sequence[str], aliases: Mapping[str, str], known: list[str], what: str
) -> set[str]:
    """The variable names ``names`` (any accepted alias) stand for; ValueError for unknown ones."""
    if isinstance(names, str):
        names = [names]
    resolved, unknown = set(), []
    for name in names:
        if name in aliases:
            resolved.add(aliases[name])
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"{what}: no such variable {unknown}; variables: {known}")
    return resolved


def check_names_present(graph_def: GraphDef, tensor_names: Sequence[str], who: str) -> None:
    """ValueError naming the tensors whose node is not in ``graph_def``."""
    names = {n.name for n in graph_def.node}
    missing = [t for t in tensor_names if op_name(t) not in names]
    if missing:
        raise ValueError(f"{who}: tensors not in the frozen graph: {missing}")


def ancestors(nodes: Mapping[str, Any], roots: Sequence[str]) -> set[str]:
    """Names of ``roots`` and every node they depend on (data and control inputs)."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack.extend(op_name(i) for i in nodes[name].input)
    return seen
