"""Interfaces read from TensorFlow's protobuf files, without importing or running the graph.

SavedModel (``saved_model.pb``: signature defs, tags, ops), frozen GraphDef (``.pb``: named input
and output tensors, ops) and TF1 meta graphs (``.meta``: signature defs, collections, ops).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._tf import import_tensorflow

Doc = dict[str, Any]


def _dtype_name(enum: int) -> str | None:
    tf = import_tensorflow()
    if not enum:  # DT_INVALID: not recorded
        return None
    try:
        return str(tf.dtypes.as_dtype(enum).name)
    except TypeError:
        return f"dtype#{enum}"


def _shape(proto: Any) -> list[int | None] | None:
    """A TensorShapeProto as a list (None for an unknown size), or None for an unknown rank."""
    if proto.unknown_rank:
        return None
    return [None if d.size < 0 else int(d.size) for d in proto.dim]


def _tensor_info(info: Any) -> Doc:
    spec: Doc = {"dtype": _dtype_name(info.dtype)}
    if info.HasField("tensor_shape"):
        spec["shape"] = _shape(info.tensor_shape)
    if info.name:
        spec["tensor"] = info.name
    return spec


def signatures_of(signature_defs: Mapping[str, Any]) -> Doc:
    """Signature defs as name -> {inputs, outputs, method}; TF-internal ``__...`` keys left out
    (``__saved_model_init_op`` is how TF2 runs initializers, not an endpoint)."""
    found: Doc = {}
    for name in sorted(signature_defs):
        if name.startswith("__"):
            continue
        sig = signature_defs[name]
        found[name] = {
            "inputs": {k: _tensor_info(sig.inputs[k]) for k in sorted(sig.inputs)},
            "outputs": {k: _tensor_info(sig.outputs[k]) for k in sorted(sig.outputs)},
            "method": sig.method_name,
        }
    return found


def ops_of(graph_def: Any) -> list[str]:
    """Sorted op types of a GraphDef: its nodes and every function of its library (a TF2
    graph's real work is in functions called through StatefulPartitionedCall)."""
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops.update(node.op for node in function.node_def)
    return sorted(ops)


def _parse(message: Any, path: Path) -> Any:
    data = Path(path).read_bytes()
    try:
        message.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError has no stable import path
        raise ValueError(f"{path}: not a {type(message).__name__} protobuf ({exc})") from None
    return message


def savedmodel_interface(directory: Path) -> Doc:
    """Signatures, tags and ops of a SavedModel directory, read from its ``saved_model.pb``."""
    import_tensorflow()
    from tensorflow.core.protobuf import saved_model_pb2

    directory = Path(directory)
    proto = _parse(saved_model_pb2.SavedModel(), directory / "saved_model.pb")
    doc: Doc = {"signatures": {}, "tags": [], "ops": []}
    ops: set[str] = set()
    several = len(proto.meta_graphs) > 1
    for meta in proto.meta_graphs:
        tags = sorted(meta.meta_info_def.tags)
        doc["tags"] = sorted(set(doc["tags"]) | {",".join(tags)})
        for name, sig in signatures_of(meta.signature_def).items():
            doc["signatures"][f"{','.join(tags)}/{name}" if several else name] = sig
        ops.update(ops_of(meta.graph_def))
    doc["ops"] = sorted(ops)
    return doc


def _node_output(nodes: Mapping[str, Any], tensor: str) -> Doc:
    """dtype and shape of ``node:index`` in a GraphDef, from the node's attributes."""
    name, _, index = tensor.partition(":")
    node = nodes.get(name.lstrip("^"))
    if node is None:
        return {"tensor": tensor, "dtype": None}
    i = int(index or 0)
    attrs = node.attr
    spec: Doc = {"dtype": None}
    for key in ("dtype", "T", "out_type", "output_type"):
        if key in attrs and attrs[key].type:
            spec["dtype"] = _dtype_name(attrs[key].type)
            break
    if "shape" in attrs and node.op in ("Placeholder", "PlaceholderWithDefault"):
        spec["shape"] = _shape(attrs["shape"].shape)
    elif "_output_shapes" in attrs and len(attrs["_output_shapes"].list.shape) > i:
        spec["shape"] = _shape(attrs["_output_shapes"].list.shape[i])
    spec["tensor"] = tensor
    return spec


def _sinks(graph_def: Any) -> list[str]:
    """Tensors nothing consumes (a frozen graph's likely outputs), when names are unknown."""
    consumed = {i.lstrip("^").split(":")[0] for n in graph_def.node for i in n.input}
    return [f"{n.name}:0" for n in graph_def.node
            if n.name not in consumed and n.op not in ("NoOp", "Const", "Assert")]


def graph_signature(graph_def: Any, inputs: Sequence[str] | None,
                    outputs: Sequence[str] | None) -> Doc:
    """The ``graph`` signature: inputs and outputs keyed by tensor name (``x:0``), the names a
    C API, Java or Go client feeds and fetches. Without names: Placeholders and sinks."""
    nodes = {n.name: n for n in graph_def.node}
    if inputs is None:
        inputs = [f"{n.name}:0" for n in graph_def.node if n.op == "Placeholder"]
    if outputs is None:
        outputs = _sinks(graph_def)

    def specs(names: Iterable[str]) -> Doc:
        found = {}
        for name in names:
            spec = _node_output(nodes, name if ":" in name else f"{name}:0")
            spec.pop("tensor", None)  # the key is the tensor name
            found[name if ":" in name else f"{name}:0"] = spec
        return found

    return {"inputs": specs(inputs), "outputs": specs(outputs)}


def frozen_graph_interface(path: Path, *, meta: Mapping[str, Any] | None = None) -> Doc:
    """The ``graph`` signature and ops of a frozen GraphDef file (binary or text)."""
    import_tensorflow()
    from tensorflow.core.framework import graph_pb2

    path = Path(path)
    graph_def = graph_pb2.GraphDef()
    try:
        _parse(graph_def, path)
    except ValueError:
        from google.protobuf import text_format

        try:
            text_format.Merge(path.read_text(), graph_def)
        except (UnicodeDecodeError, text_format.ParseError) as exc:
            raise ValueError(f"{path}: not a GraphDef, binary or text ({exc})") from None
    meta = meta or {}
    return {"signatures": {"graph": graph_signature(graph_def, meta.get("inputs"),
                                                    meta.get("outputs"))},
            "ops": ops_of(graph_def)}


def meta_graph_interface(path: Path, *, meta: Mapping[str, Any] | None = None) -> Doc:
    """A TF1 ``.meta`` file: its signature defs (a Saver writes none), the ``graph`` signature
    of the tensors the artifact names, collection names, and ops."""
    import_tensorflow()
    from tensorflow.core.protobuf import meta_graph_pb2

    proto = _parse(meta_graph_pb2.MetaGraphDef(), Path(path))
    meta = meta or {}
    signatures = signatures_of(proto.signature_def)
    if meta.get("inputs") is not None or meta.get("outputs") is not None:
        signatures["graph"] = graph_signature(proto.graph_def, meta.get("inputs"),
                                              meta.get("outputs"))
    return {"signatures": signatures, "collections": sorted(proto.collection_def),
            "ops": ops_of(proto.graph_def)}
