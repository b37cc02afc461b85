"""Freeze TensorFlow models into a single GraphDef (variables -> constants), write, read and run it.

The frozen-graph (`.pb`) format is the oldest TensorFlow deployment artefact: one protobuf that
holds the graph and every weight as a ``Const`` node, loaded with ``import_graph_def`` and run by
tensor name (``"x:0"``) from any language binding.

Why not ``convert_variables_to_constants_v2``: it spends most of its time building a *new*
ConcreteFunction from the frozen GraphDef (``_construct_concrete_function`` ->
``wrap_function.function_from_graph_def``), which writing a ``.pb`` never needs.
:func:`freeze_function` runs the same TF conversion machinery (Grappler function inlining, then
``_replace_variables_by_constants``) and stops at the GraphDef. The weight bytes are copied into
the protos once (TF's ``make_tensor_proto`` copies each array four times).

TensorFlow internals used here (private, checked against TF 2.21):

* ``tensorflow.python.framework.convert_to_constants``: ``_run_inline_graph_optimization``,
  ``_TensorData``, ``_GraphDef`` and ``_VarHandle`` (the body of
  ``_replace_variables_by_constants``, with a one-copy ``_VarHandle`` subclass);
* ``tensorflow.python.framework.tensor_util._TENSOR_CONTENT_TYPES``;
* ``tensorflow.python.util.deprecation._PRINT_DEPRECATION_WARNINGS`` (to keep the deprecation
  log line of ``tf.compat.v1.graph_util.convert_variables_to_constants`` out).

TensorFlow is imported inside the functions, never when this module is imported.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from .errors import ModelPersistError

if TYPE_CHECKING:  # pragma: no cover
    from tensorflow.core.framework.graph_pb2 import GraphDef

__all__ = [
    "GRAPHDEF_LIMIT",
    "TEXT_SUFFIXES",
    "VARIABLE_OP_TYPES",
    "FrozenGraph",
    "GraphTooLargeError",
    "freeze_function",
    "estimate_graph_bytes",
    "estimate_node_bytes",
    "freeze_session",
    "graph_variable_ops",
    "read_graph_def",
    "run_graph_def",
    "unsafe_ops",
    "UNSAFE_OP_TYPES",
]

#: Protobuf refuses to serialize or parse a message of 2 GiB or more. Read at call time, so a
#: test may monkeypatch it to something small.
GRAPHDEF_LIMIT = 2**31 - 1

#: Suffixes that :func:`read_graph_def` parses as protobuf text format; anything else is binary.
TEXT_SUFFIXES = frozenset({".pbtxt", ".pbtext", ".prototxt", ".txt"})

#: Op types that hold, read or write a variable. A fully frozen graph contains none of them.
#: (``Placeholder`` nodes of dtype ``resource`` count too: that is what TF's own converter leaves
#: for a variable it was told not to convert.)
VARIABLE_OP_TYPES = frozenset(
    {
        "VarHandleOp",
        "_VarHandlesOp",
        "ReadVariableOp",
        "_ReadVariablesOp",
        "VariableV2",
        "Variable",
        "AssignVariableOp",
        "AssignAddVariableOp",
        "AssignSubVariableOp",
        "Assign",
        "VarIsInitializedOp",
        "IsVariableInitialized",
        "ResourceGather",
        "ResourceGatherNd",
        "ResourceScatterUpdate",
    }
)

#: Ops that read or write files, or call back into Python, when a graph runs. A frozen
#: inference graph has no use for them, and a crafted ``.pb`` can (TensorFlow's SECURITY.md:
#: a model is a program). Best effort, not a sandbox: see :func:`unsafe_ops`.
UNSAFE_OP_TYPES = frozenset(
    {
        "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst",
        "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice",
        "MergeV2Checkpoints", "ShardedFilename", "ShardedFilespec",
        "PyFunc", "PyFuncStateless", "EagerPyFunc",
        "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2",
        "TFRecordReader", "TFRecordReaderV2", "FixedLengthRecordReader",
        "FixedLengthRecordReaderV2", "IdentityReader", "IdentityReaderV2",
        "TextLineDataset", "TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset",
        "FixedLengthRecordDatasetV2", "SaveDataset", "SaveDatasetV2", "LoadDataset",
        "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary", "WriteRawProtoSummary",
        "DebugIdentityV2", "DebugIdentityV3",
    }
)

_VARIABLE_SOURCE_OPS = ("VarHandleOp", "VariableV2", "Variable")
_DT_RESOURCE = 20  # types_pb2.DT_RESOURCE, without importing TensorFlow


class GraphTooLargeError(ModelPersistError, ValueError):
    """A frozen graph would exceed protobuf's 2 GiB message limit, so it cannot be one ``.pb``.

    Raised before anything is serialized. ``size`` is the estimated size in bytes and
    ``limit`` the limit that applied.
    """

    def __init__(self, size: int, limit: int, what: str = "frozen graph") -> None:
        self.size = int(size)
        self.limit = int(limit)
        super().__init__(
            f"{what} would be about {_human(self.size)} ({self.size:,} bytes, weights as "
            f"constants), more than one GraphDef can hold ({self.limit:,} bytes: protobuf "
            "refuses messages of 2 GiB or more), so this model cannot be frozen into a single "
            ".pb. Persist it in the 'savedmodel' or 'tf_checkpoint' format instead (they keep "
            "the weights outside the graph proto)."
        )


@dataclass
class FrozenGraph:
    """A frozen GraphDef and the tensor names needed to run it.

    ``inputs`` are the feedable placeholders (``"x:0"``), ``outputs`` the fetchable tensors in
    the order of the model's outputs, ``kept_variables`` the variables deliberately left as
    variables (exclude/keep lists); those need a value (restore) before the graph can run.
    """

    graph_def: GraphDef
    inputs: list[str]
    outputs: list[str]
    kept_variables: list[str] = field(default_factory=list)

    def write(self, path: str | os.PathLike[str], *, as_text: bool = False) -> pathlib.Path:
        """Write the graph to ``path``: binary protobuf, or text format when ``as_text``.

        Refuses (GraphTooLargeError) a graph whose constants reach the 2 GiB protobuf limit,
        before serializing it. The file is written atomically (temporary file + rename) and
        parent directories are created. Returns the path written.
        """
        path = pathlib.Path(path)
        _check_size(estimate_graph_bytes(self.graph_def), "frozen graph")
        if as_text:
            from google.protobuf import text_format

            # the same text tf.io.write_graph(as_text=True) writes
            text = text_format.MessageToString(self.graph_def).encode("utf-8")
            _atomic_write(path, lambda f: f.write(text))
        else:
            _atomic_write(path, lambda f: _write_graph_def_binary(self.graph_def, f))
        return path

    def variable_ops(self) -> list[str]:
        """Names of the nodes that still hold, read or write a variable, in graph order.

        Covers variable ops (see VARIABLE_OP_TYPES), resource placeholders and any node that
        calls a library function containing such ops ((Stateful)PartitionedCall, If, While...).
        Empty for a fully frozen graph: this is the structural check of a freeze.
        """
        return graph_variable_ops(self.graph_def)


# ---- freezing ----------------------------------------------------------------------------------


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
    tf = _import_tf()
    from tensorflow.python.framework import convert_to_constants as c2c

    fn = concrete_fn
    if not hasattr(fn, "captured_inputs") and hasattr(fn, "get_concrete_function"):
        fn = fn.get_concrete_function()
    if not hasattr(fn, "graph") or not hasattr(fn, "captured_inputs"):
        raise TypeError(f"freeze_function needs a ConcreteFunction, got {type(concrete_fn)!r}")
    fgraph = fn.graph

    # --- which capture is which variable -------------------------------------------------------
    by_handle = {id(v.handle): v for v in fgraph.variables}
    captures = list(fgraph.captures)  # (external value, internal placeholder), in input order
    var_captures: list[tuple[int, Any, Any, str]] = []  # (index, variable, placeholder, name)
    const_captures: list[tuple[int, Any, Any]] = []
    for idx, (external, internal) in enumerate(captures):
        var = by_handle.get(id(external))
        if var is not None:
            var_captures.append((idx, var, internal, _strip_output(var.name)))
        elif getattr(external, "dtype", None) == tf.resource:
            raise ValueError(
                f"freeze_function: the function captures resource {internal.name!r} that is not "
                "a variable (a lookup table, iterator, ...); it cannot be turned into a constant"
            )
        else:
            const_captures.append((idx, external, internal))

    aliases: dict[str, str] = {}  # any accepted spelling -> variable name
    for _, var, internal, name in var_captures:
        for alias in (name, var.name, internal.op.name, internal.name):
            aliases.setdefault(alias, name)
    known = sorted({name for *_, name in var_captures})
    excluded = _resolve_names(exclude, aliases, known, "exclude")
    wanted = None if keep is None else _resolve_names(keep, aliases, known, "keep")

    def convert(name: str) -> bool:
        return name not in excluded and (wanted is None or name in wanted)

    # --- size check, from shapes: before any value is read or copied ---------------------------
    estimate = estimate_graph_bytes(fgraph.as_graph_def())
    for _, var, _, name in var_captures:
        if convert(name):
            estimate += _variable_nbytes(var)
    for _, external, _ in const_captures:
        estimate += int(np.prod(external.shape, dtype=np.int64)) * external.dtype.size
    _check_size(estimate, "frozen graph")

    # --- Grappler function inlining (what convert_variables_to_constants_v2 does first) --------
    graph_def = c2c._run_inline_graph_optimization(  # noqa: SLF001
        fn, lower_control_flow=True, aggressive_inlining=False
    )

    tensor_data: dict[str, Any] = {}
    with _eager():
        for idx, var, internal, name in var_captures:
            if convert(name):
                value = _as_numpy(var.value())
                tensor_data[internal.op.name] = c2c._TensorData(  # noqa: SLF001
                    numpy=value, dtype=var.dtype.as_datatype_enum, index=idx
                )
        for idx, external, internal in const_captures:
            value = _as_numpy(external)
            tensor_data[internal.op.name] = c2c._TensorData(  # noqa: SLF001
                numpy=value, dtype=tf.as_dtype(value.dtype).as_datatype_enum, index=idx
            )
        frozen_def = _replace_variables_by_constants(graph_def, tensor_data)

    # --- variables left alone: resource placeholder -> VarHandleOp named after the variable ---
    kept: list[str] = []
    for _, var, internal, name in var_captures:
        if convert(name):
            continue
        kept.append(name)
        _placeholder_to_var_handle(frozen_def, internal.op.name, name, var)

    n_args = len(fn.inputs) - len(fn.captured_inputs)
    inputs = [t.name for t in fn.inputs[:n_args]]
    outputs = [t.name for t in fn.outputs[: len(tf.nest.flatten(fn.structured_outputs))]]
    _check_names_present(frozen_def, inputs + outputs, "freeze_function")
    return FrozenGraph(frozen_def, inputs, outputs, kept)


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
    tf = _import_tf()
    if isinstance(output_names, str):
        output_names = [output_names]
    if isinstance(input_names, str):
        input_names = [input_names]
    graph_def = session.graph.as_graph_def()
    nodes = {n.name: n for n in graph_def.node}
    outputs = [_tensor_name(n) for n in output_names]
    inputs = [_tensor_name(n) for n in input_names]
    if not outputs:
        raise ValueError("freeze_session: no output names given")
    missing = [t for t in outputs + inputs if _op_name(t) not in nodes]
    if missing:
        raise ValueError(f"freeze_session: not in the session's graph: {missing}")

    variable_nodes = [n for n in graph_def.node if n.op in _VARIABLE_SOURCE_OPS]
    aliases: dict[str, str] = {}
    for n in variable_nodes:
        aliases[n.name] = n.name
        aliases[n.name + ":0"] = n.name
    known = sorted(n.name for n in variable_nodes)
    excluded = _resolve_names(exclude, aliases, known, "exclude")
    wanted = None if keep is None else _resolve_names(keep, aliases, known, "keep")

    # size check on the variables that will actually be frozen (ancestors of the outputs)
    needed = _ancestors(nodes, [_op_name(t) for t in outputs])
    estimate = sum(estimate_node_bytes(nodes[name]) for name in needed)
    to_read: list[str] = []
    for n in variable_nodes:
        if n.name in needed and n.name not in excluded and (wanted is None or n.name in wanted):
            size = _shape_attr_nbytes(n)
            if size is not None:
                estimate += size
            else:  # shape not fully known: ask the session for the value TF would read
                read = n.name + ("/Read/ReadVariableOp" if n.op == "VarHandleOp" else "")
                if read in nodes:
                    to_read.append(read + ":0")
    if to_read:
        estimate += sum(np.asarray(v).nbytes for v in session.run(to_read))
    _check_size(estimate, "frozen graph")

    with _no_deprecation_warnings():
        frozen_def = tf.compat.v1.graph_util.convert_variables_to_constants(
            session,
            graph_def,
            [_op_name(t) for t in outputs],
            variable_names_whitelist=None if wanted is None else sorted(wanted),
            variable_names_blacklist=sorted(excluded) or None,
        )
    kept = [n.name for n in frozen_def.node if n.op in _VARIABLE_SOURCE_OPS]
    _check_names_present(frozen_def, inputs, "freeze_session (inputs no output depends on?)")
    return FrozenGraph(frozen_def, inputs, outputs, kept)


# ---- reading and running -----------------------------------------------------------------------


def read_graph_def(path: str | os.PathLike[str]) -> GraphDef:
    """Read a GraphDef from ``path``: text format for .pbtxt/.pbtext/.prototxt/.txt, else binary.

    Returns the GraphDef. Raises ValueError naming the file and the cause when the bytes are not
    a GraphDef: empty, garbage, another proto (unknown fields), truncated. A binary file cut at
    a node boundary still parses; it is caught because it lacks the ``versions`` field that
    TensorFlow writes after the nodes and library (so a binary GraphDef without ``versions``,
    which TensorFlow never writes, is refused), or because a node reads a node the file does not
    contain. FileNotFoundError propagates as is.
    """
    _import_tf()
    from google.protobuf import message, text_format
    from tensorflow.core.framework.graph_pb2 import GraphDef

    path = pathlib.Path(path)
    data = path.read_bytes()
    if not data:
        raise ValueError(f"{path}: file is empty, not a GraphDef")
    graph_def = GraphDef()
    if path.suffix.lower() in TEXT_SUFFIXES:
        try:
            text_format.Parse(data.decode("utf-8"), graph_def)
        except (text_format.ParseError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a text-format GraphDef ({exc})") from exc
    else:
        try:
            graph_def.ParseFromString(data)
        except (message.DecodeError, RuntimeError) as exc:
            raise ValueError(
                f"{path}: not a binary GraphDef ({exc}); the file is truncated or corrupt, or "
                "not a frozen graph"
            ) from exc
        unknown = _unknown_fields(graph_def)
        if unknown:
            raise ValueError(
                f"{path}: not a binary GraphDef (fields {unknown} are not GraphDef fields; "
                "corrupt bytes, or another protobuf such as a SavedModel's saved_model.pb)"
            )
        if not graph_def.HasField("versions"):
            # TensorFlow writes `versions` (field 4) after every node and function: a file cut
            # at a node boundary parses, but lacks it.
            raise ValueError(
                f"{path}: GraphDef without its 'versions' field, which TensorFlow writes after "
                "the nodes: the file is truncated (or was not written by TensorFlow)"
            )
    problem = _graph_problem(graph_def)
    if problem:
        raise ValueError(f"{path}: not a usable GraphDef ({problem}); truncated or corrupt file?")
    return graph_def


def unsafe_ops(graph_def: GraphDef) -> list[str]:
    """``"node (Op)"`` for every node that reads or writes files or runs Python when run.

    Looks at the main graph and every library function: op types in UNSAFE_OP_TYPES, and
    ``PrintV2`` writing to a file (``output_stream="file://..."``). Returns them in graph order;
    empty for an ordinary frozen model. A best-effort screen for graphs from untrusted places,
    not a sandbox: running any graph runs TensorFlow kernels on its bytes.
    """
    found = []
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    for node in nodes:
        if node.op in UNSAFE_OP_TYPES or (
            node.op == "PrintV2" and node.attr["output_stream"].s.startswith(b"file://")
        ):
            found.append(f"{node.name} ({node.op})")
    return found


def run_graph_def(
    graph_def: GraphDef,
    feeds: Mapping[str, np.ndarray],
    fetches: Sequence[str],
    *,
    grappler: bool = False,
) -> list[np.ndarray]:
    """Import ``graph_def`` (name="") into a fresh tf.Graph and run ``fetches`` once in a Session.

    ``feeds`` and ``fetches`` are tensor names (``"x:0"``; an op name means its output 0).
    With ``grappler=False`` Grappler (meta optimizer) and the classic graph optimizer
    (constant folding, CSE; OptimizerOptions.L0) are off: the first run of a graph with big
    constants costs far less, and the arithmetic is the same ops on the same values. Eager
    execution stays enabled globally. Returns the fetched values as numpy arrays, in order.

    Like every ``import_graph_def``, this adds default-valued attrs to ``graph_def``'s nodes in
    place (TensorFlow's behaviour; copying a big graph first would cost more than the run).
    """
    tf = _import_tf()
    if isinstance(fetches, str):
        fetches = [fetches]
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto()
    if not grappler:
        config.graph_options.rewrite_options.disable_meta_optimizer = True
        config.graph_options.optimizer_options.opt_level = tf.compat.v1.OptimizerOptions.L0
    feed_dict = {_tensor_name(name): value for name, value in feeds.items()}
    with tf.compat.v1.Session(graph=graph, config=config) as session:
        values = session.run([_tensor_name(f) for f in fetches], feed_dict=feed_dict)
    return [np.asarray(v) for v in values]


# ---- graph inspection helpers (public: the plugin's structural checks use them) ---------------


def graph_variable_ops(graph_def: GraphDef) -> list[str]:
    """Names of main-graph nodes that hold/read/write variables or call functions that do.

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
            _is_variable_node(n) or any(function_has_variables(f, stack) for f in _called(n))
            for n in functions[name].node_def
        )
        memo[name] = found
        return found

    return [
        n.name
        for n in graph_def.node
        if _is_variable_node(n) or any(function_has_variables(f) for f in _called(n))
    ]


def estimate_graph_bytes(graph_def: GraphDef) -> int:
    """Estimated serialized size of the constants in ``graph_def`` (main graph and library).

    Cheap (no serialization): ``GraphDef.ByteSize()`` serializes in the upb protobuf backend
    and takes as long as writing the file. Returns bytes.
    """
    total = 0
    for node in graph_def.node:
        total += estimate_node_bytes(node)
    for func in graph_def.library.function:
        for node in func.node_def:
            total += estimate_node_bytes(node)
    return total


def estimate_node_bytes(node: Any) -> int:
    """Estimated bytes of one NodeDef: its tensor attrs' content plus a small fixed overhead."""
    size = 64 + len(node.name) + sum(len(i) for i in node.input)
    for attr in node.attr.values():
        if attr.HasField("tensor"):
            size += _tensor_proto_bytes(attr.tensor)
    return size


# ---- internals ---------------------------------------------------------------------------------


def _import_tf() -> Any:
    """The tensorflow module, imported quietly (see _tf.import_tensorflow)."""
    from ._tf import import_tensorflow

    return import_tensorflow()


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _check_size(estimate: int, what: str) -> None:
    limit = GRAPHDEF_LIMIT  # module global, read now (monkeypatchable)
    if estimate > limit:
        raise GraphTooLargeError(estimate, limit, what)


def _atomic_write(path: pathlib.Path, write: Callable[[BinaryIO], object]) -> None:
    """Create ``path`` with ``write(file)``: temporary file in the same directory, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _write_graph_def_binary(graph_def: GraphDef, f: BinaryIO) -> None:
    """Write ``graph_def`` in protobuf binary form, node by node.

    Same bytes as ``graph_def.SerializeToString(deterministic=True)`` (what tf.io.write_graph
    writes): protobuf emits fields in field-number order, and ``node`` is field 1, so the nodes
    (each framed as tag 0x0a + varint length) come first and the other fields (library, version,
    versions, debug_info) follow. Serializing one node at a time never holds a second copy of
    the whole graph in memory, and was measured faster than one SerializeToString for a 67 MB
    graph (0.10-0.13 s against 0.17-0.40 s including the write).
    """
    from tensorflow.core.framework.graph_pb2 import GraphDef as _GraphDef

    node_tag = _varint((1 << 3) | 2)  # field 1 (node), wire type 2 (length-delimited)
    for node in graph_def.node:
        data = node.SerializeToString(deterministic=True)
        f.write(node_tag + _varint(len(data)))
        f.write(data)
    rest = _GraphDef()
    for descriptor, value in graph_def.ListFields():
        if descriptor.name == "node":
            continue
        if descriptor.message_type is not None:
            getattr(rest, descriptor.name).CopyFrom(value)
        else:
            setattr(rest, descriptor.name, value)
    f.write(rest.SerializeToString(deterministic=True))


def _strip_output(name: str) -> str:
    """'dense/kernel:0' -> 'dense/kernel'."""
    head, sep, tail = name.rpartition(":")
    return head if sep and tail.isdigit() else name


def _op_name(name: str) -> str:
    return _strip_output(name[1:] if name.startswith("^") else name)


def _tensor_name(name: str) -> str:
    head, sep, tail = name.rpartition(":")
    return name if sep and tail.isdigit() else name + ":0"


def _resolve_names(
    names: Sequence[str], aliases: Mapping[str, str], known: list[str], what: str
) -> set[str]:
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


def _variable_nbytes(var: Any) -> int:
    shape = var.shape
    if shape.is_fully_defined():
        return int(shape.num_elements()) * var.dtype.size
    return int(_as_numpy(var.value()).nbytes)  # pragma: no cover - variables have full shapes


def _shape_attr_nbytes(node: Any) -> int | None:
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


def _tensor_proto_bytes(tensor: Any) -> int:
    size = len(tensor.tensor_content)
    for field_name in (
        "float_val",
        "double_val",
        "int_val",
        "int64_val",
        "half_val",
        "bool_val",
        "uint32_val",
        "uint64_val",
        "scomplex_val",
        "dcomplex_val",
    ):
        size += 8 * len(getattr(tensor, field_name))
    size += sum(len(s) + 2 for s in tensor.string_val)
    return size


def _as_numpy(tensor: Any) -> np.ndarray:
    """An eager tensor's value as numpy without the copy ``.numpy()`` makes (a view when
    possible; the array keeps the tensor alive)."""
    value = np.asarray(tensor)
    return value


@contextlib.contextmanager
def _eager() -> Iterator[None]:
    """Read variable values eagerly even when called under a tf.Graph().as_default()."""
    tf = _import_tf()
    with tf.init_scope():
        if not tf.executing_eagerly():
            raise RuntimeError("freeze_function needs eager execution to read variable values")
        yield


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


def _replace_variables_by_constants(graph_def: GraphDef, tensor_data: dict[str, Any]) -> GraphDef:
    """TF's ``_replace_variables_by_constants`` on ``graph_def`` with the given values.

    The graph rewrite (Const nodes, ReadVariableOp -> Identity, function signatures and control
    flow dtypes) is TF's own. Only the filling of each Const's TensorProto differs: the bytes go
    straight into ``tensor_content`` (one copy), where ``make_tensor_proto`` + ``CopyFrom`` make
    four. Returns the new GraphDef; ``graph_def`` is not modified.
    """
    from tensorflow.python.framework import convert_to_constants as c2c

    input_graph = c2c._GraphDef(graph_def)  # noqa: SLF001
    for name, value in tensor_data.items():
        node = input_graph.nodes[name]
        if type(node) is c2c._VarHandle:  # noqa: SLF001
            node.__class__ = _fast_var_handle_class()
        node.convert_variable_to_constant(None, value)
    return input_graph.converted_self().graph_def


_FAST_VAR_HANDLE: type | None = None


def _fast_var_handle_class() -> type:
    """A ``convert_to_constants._VarHandle`` whose Const value is filled with one copy."""
    global _FAST_VAR_HANDLE
    if _FAST_VAR_HANDLE is None:
        from tensorflow.python.framework import convert_to_constants as c2c

        class _FastVarHandle(c2c._VarHandle):  # noqa: SLF001
            def convert_variable_to_constant(self, incoming_edge: Any, tensor_data: Any) -> None:
                node = self.converted_self().node
                node.Clear()
                node.name = self._node.name
                node.op = "Const"
                node.attr["dtype"].CopyFrom(tensor_data.dtype_attr)
                _fill_tensor_proto(node.attr["value"].tensor, tensor_data.numpy, tensor_data.dtype)
                for edge in self.outgoing_edges:
                    edge.destination.convertible.convert_variable_to_constant(edge, tensor_data)

        _FAST_VAR_HANDLE = _FastVarHandle
    return _FAST_VAR_HANDLE


def _fill_tensor_proto(proto: Any, array: np.ndarray, dtype_enum: int) -> None:
    """Fill ``proto`` (a TensorProto inside a NodeDef) with ``array`` of TF dtype ``dtype_enum``.

    Numeric arrays of more than one element go to ``tensor_content`` (raw bytes, what
    make_tensor_proto does too); anything else goes through make_tensor_proto.
    """
    from tensorflow.python.framework import dtypes, tensor_util

    dtype = dtypes.as_dtype(dtype_enum)
    content_types: frozenset[Any] = getattr(tensor_util, "_TENSOR_CONTENT_TYPES", frozenset())
    if (
        array.size > 1
        and dtype in content_types
        and array.dtype == dtype.as_numpy_dtype
        and array.dtype.byteorder in "=|"
    ):
        proto.Clear()
        proto.dtype = dtype_enum
        for dim in array.shape:
            proto.tensor_shape.dim.add().size = dim
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
    else:
        proto.CopyFrom(tensor_util.make_tensor_proto(array, dtype_enum, array.shape))


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


def _check_names_present(graph_def: GraphDef, tensor_names: Sequence[str], who: str) -> None:
    names = {n.name for n in graph_def.node}
    missing = [t for t in tensor_names if _op_name(t) not in names]
    if missing:
        raise ValueError(f"{who}: tensors not in the frozen graph: {missing}")


def _ancestors(nodes: Mapping[str, Any], roots: Sequence[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack.extend(_op_name(i) for i in nodes[name].input)
    return seen


def _is_variable_node(node: Any) -> bool:
    if node.op in VARIABLE_OP_TYPES:
        return True
    return node.op == "Placeholder" and node.attr["dtype"].type == _DT_RESOURCE


def _called(node: Any) -> list[str]:
    """Library functions a node calls: through func attrs (PartitionedCall f, If branches, While
    cond/body, ...) or as its op type (legacy direct call)."""
    called = [node.op]
    for attr in node.attr.values():
        if attr.HasField("func"):
            called.append(attr.func.name)
        elif attr.HasField("list"):
            called.extend(f.name for f in attr.list.func)
    return called


def _unknown_fields(graph_def: GraphDef) -> list[int]:
    """Field numbers of the top-level unknown fields of a parsed GraphDef."""
    try:
        from google.protobuf import unknown_fields
    except ImportError:  # pragma: no cover - older protobuf
        try:
            return sorted({f.field_number for f in graph_def.UnknownFields()})
        except (AttributeError, NotImplementedError):
            return []
    return sorted({f.field_number for f in unknown_fields.UnknownFieldSet(graph_def)})


def _graph_problem(graph_def: GraphDef) -> str | None:
    """A sentence about what makes ``graph_def`` unusable, or None when it looks sound."""
    if not graph_def.node:
        return "it has no nodes"
    names = set()
    for node in graph_def.node:
        if not node.name or not node.op:
            return "a node has no name or no op"
        names.add(node.name)
    for node in graph_def.node:
        for inp in node.input:
            src = _op_name(inp)
            if src not in names:
                return f"node {node.name!r} reads {inp!r}, which is not in the file"
    return None
