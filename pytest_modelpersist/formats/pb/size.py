"""How big a frozen graph will be, estimated before anything is copied or serialized."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ModelPersistError

if TYPE_CHECKING:  # pragma: no cover
    from tensorflow.core.framework.graph_pb2 import GraphDef

#: Protobuf refuses to serialize or parse a message of 2 GiB or more. Read at call time, so a
#: test may monkeypatch it to something small.
GRAPHDEF_LIMIT = 2**31 - 1

_VALUE_FIELDS = ("float_val", "double_val", "int_val", "int64_val", "half_val", "bool_val",
                 "uint32_val", "uint64_val", "scomplex_val", "dcomplex_val")


class GraphTooLargeError(ModelPersistError, ValueError):
    """A frozen graph would exceed protobuf's 2 GiB message limit, so it cannot be one ``.pb``.

    Raised before anything is serialized. ``size`` is the estimated size in bytes and
    ``limit`` the limit that applied.
    """

    def __init__(self, size: int, limit: int, what: str = "frozen graph") -> None:
        self.size = int(size)
        self.limit = int(limit)
        super().__init__(
            f"{what} would be about {human(self.size)} ({self.size:,} bytes, weights as "
            f"constants), more than one GraphDef can hold ({self.limit:,} bytes: protobuf "
            "refuses messages of 2 GiB or more), so this model cannot be frozen into a single "
            ".pb. Persist it in the 'savedmodel' or 'tf_checkpoint' format instead (they keep "
            "the weights outside the graph proto)."
        )


def check_size(estimate: int, what: str) -> None:
    """GraphTooLargeError when ``estimate`` exceeds GRAPHDEF_LIMIT (read now: monkeypatchable)."""
    limit = GRAPHDEF_LIMIT
    if estimate > limit:
        raise GraphTooLargeError(estimate, limit, what)


def estimate_graph_bytes(graph_def: GraphDef) -> int:
    """Estimated serialized size of the constants in ``graph_def`` (main graph and library).

    Cheap (no serialization): ``GraphDef.ByteSize()`` serializes in the upb protobuf backend
    and takes as long as writing the file. Returns bytes.
    """
    total = sum(estimate_node_bytes(node) for node in graph_def.node)
    for func in graph_def.library.function:
        total += sum(estimate_node_bytes(node) for node in func.node_def)
    return total


def estimate_node_bytes(node: Any) -> int:
    """Estimated bytes of one NodeDef: its tensor attrs' content plus a small fixed overhead."""
    size = 64 + len(node.name) + sum(len(i) for i in node.input)
    for attr in node.attr.values():
        if attr.HasField("tensor"):
            size += _tensor_proto_bytes(attr.tensor)
    return size


def variable_nbytes(var: Any) -> int:
    """Bytes of a tf.Variable's value, from its shape when fully known."""
    shape = var.shape
    if shape.is_fully_defined():
        return int(shape.num_elements()) * var.dtype.size
    return int(np.asarray(var.value()).nbytes)  # pragma: no cover - variables have full shapes


def shape_attr_nbytes(node: Any) -> int | None:
    """Bytes of a VarHandleOp/VariableV2 value from its shape/dtype attrs, None if unknown."""
    from tensorflow.python.framework import dtypes

    shape = node.attr["shape"].shape
    if shape.unknown_rank or any(d.size < 0 for d in shape.dim):
        return None
    try:
        itemsize = dtypes.as_dtype(node.attr["dtype"].type).size
    except (TypeError, ValueError):  # pragma: no cover
        return None
    return int(np.prod([d.size for d in shape.dim], dtype=np.int64)) * itemsize


def human(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _tensor_proto_bytes(tensor: Any) -> int:
    size = len(tensor.tensor_content)
    for field_name in _VALUE_FIELDS:
        size += 8 * len(getattr(tensor, field_name))
    size += sum(len(s) + 2 for s in tensor.string_val)
    return size
