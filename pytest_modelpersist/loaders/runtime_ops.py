"""Ops an artifact's graphs use that this interpreter's TensorFlow does not register.

Run by the loader child (subprocess_runner) after a restore failed, so that a runtime older than
the trainer says which ops it lacks, all of them, instead of TensorFlow's first "Op type not
registered" (tensorflow#62489, tensorflow/serving#924). Needs TensorFlow, not pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: A graph file this large is left alone (protobuf cannot parse it anyway).
_MAX_BYTES = 2**31 - 1


def graphs_in(directory: Path) -> Iterator[tuple[Path, Any]]:
    """(file, GraphDef) of every graph an artifact directory holds: each meta graph of a
    ``saved_model.pb``, a TF1 ``.meta`` file's graph, a frozen ``.pb``. Unreadable files are
    skipped: the restore error already speaks for them."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework.graph_pb2 import GraphDef
    from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        if path.suffix not in (".pb", ".meta") or path.stat().st_size > _MAX_BYTES:
            continue
        try:
            data = path.read_bytes()
            if path.name == "saved_model.pb":
                saved = saved_model_pb2.SavedModel.FromString(data)
                yield from ((path, mg.graph_def) for mg in saved.meta_graphs)
            elif path.suffix == ".meta":
                yield path, meta_graph_pb2.MetaGraphDef.FromString(data).graph_def
            else:
                yield path, GraphDef.FromString(data)
        except (OSError, DecodeError, RuntimeError, ValueError):  # not a graph we can read
            continue


def unregistered_ops_line(directory: Path | str, tf_version: str) -> str | None:
    """``UnregisteredOpError: ...`` naming each op type the artifact uses and this TensorFlow
    lacks (with up to three nodes per file), or None when every op is registered."""
    from ..formats.pb.screen import unregistered_ops

    by_op: dict[str, list[str]] = {}  # op -> "file: node" places
    for path, graph_def in graphs_in(Path(directory)):
        for found in unregistered_ops(graph_def):
            node, _, op = found.rpartition(" (")
            places = by_op.setdefault(op.rstrip(")"), [])
            if f"{path.name}: {node}" not in places:
                places.append(f"{path.name}: {node}")
    if not by_op:
        return None
    listed = "; ".join(f"{op} ({', '.join(places[:3])}"
                       f"{f' and {len(places) - 3} more' if len(places) > 3 else ''})"
                       for op, places in sorted(by_op.items()))
    return (f"UnregisteredOpError: TensorFlow {tf_version} does not register {len(by_op)} "
            f"op(s) the artifact uses: {listed}")
