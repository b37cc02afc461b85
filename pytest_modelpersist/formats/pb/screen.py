"""Which ops of a graph touch files, the network or Python, or can block forever, when it runs.

The screen is derived from TensorFlow's op registry (every op the installed TensorFlow knows):
an op is unsafe when one of its inputs or attributes is named like a file, path, directory,
URL, address or summary writer (``filename``, ``prefix``, ``debug_urls``, ``logdir``,
``writer`` ...), plus a reviewed list of ops whose danger their signature does not show
(Python callbacks, queues and readers, rendezvous and collectives, SQL datasets, memory-mapped
constants) minus a reviewed list of ops whose matching names are harmless (regex patterns).
``tests/test_op_screen.py`` enumerates the registry and fails on any op nobody classified, so
a new TensorFlow version's ops get reviewed. Best effort, not a sandbox: running any graph runs
TensorFlow kernels on its bytes (TensorFlow's SECURITY.md: a model is a program).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ...errors import ModelPersistError

if TYPE_CHECKING:  # pragma: no cover
    from tensorflow.core.framework.graph_pb2 import GraphDef

#: Words (``_``-separated parts of an input or attribute name) that mark an op that reads or
#: writes files or talks to another machine: ``filename``, ``ckpt_path``, ``debug_urls``, ...
FILE_WORDS = frozenset({
    "file", "files", "filename", "filenames", "filepath", "path", "paths", "dir", "directory",
    "logdir", "prefix", "pattern", "patterns", "url", "urls", "uri", "address", "writer", "ckpt",
})

#: Reviewed: unsafe although no input or attribute name says so.
REVIEWED_UNSAFE = frozenset({
    # Python callbacks
    "PyFunc", "PyFuncStateless", "EagerPyFunc",
    # files behind other names
    "ImmutableConst",  # memory_region_name: a memory-mapped file
    "SqlDataset", "ExperimentalSqlDataset",  # data_source_name: a database file
    "DecodeProtoV2", "EncodeProto",  # descriptor_source may name a file
    "FileSystemSetConfiguration", "SummaryWriter", "StatsAggregatorSetSummaryWriter",
    "ShardedFilename", "ShardedFilespec",  # only build checkpoint file names
    # another program: runs whatever TFLite subgraph a runtime string key names (TF 2.15)
    "TfLiteSubgraphExecute",
    # wait for data that may never come (a hang, not a file)
    "Recv", "Send", "_Recv", "_Send", "_HostRecv", "_HostSend", "RemoteCall", "WorkerHeartbeat",
    "AccumulatorTakeGradient", "ResourceAccumulatorTakeGradient",
    "SparseAccumulatorTakeGradient",
})

#: Reviewed: names of these ops' inputs/attributes match FILE_WORDS, yet they touch no file.
REVIEWED_SAFE = frozenset({
    "RegexReplace", "RegexFullMatch", "StaticRegexReplace", "StaticRegexFullMatch",  # pattern
    "CTCBeamSearchDecoder",  # top_paths: a count
    "SetStatsAggregatorDataset", "ExperimentalSetStatsAggregatorDataset",  # counter_prefix
    "TensorSliceDataset",  # is_files: a flag
})

#: Families reviewed as unsafe by name: queues and readers (block on empty queues, read files),
#: barriers and staging areas (block), collectives and NCCL (wait for peers), RPC, debug ops
#: with URLs (debug_urls is caught by FILE_WORDS too).
_UNSAFE_NAME = re.compile(
    r"Queue|Reader|^Barrier|^(Ordered)?Map(Stage|Unstage|Peek)|^(Unstage|Stage)|^Collective"
    r"|^Nccl|^_Nccl|^Rpc|^DebugIdentity|^DebugNanCount$|^DebugNumericSummary$"
)

#: The static part of the screen (what older versions of this module listed), kept for callers
#: that read it; :func:`unsafe_op_types` is the full, registry-derived set.
UNSAFE_OP_TYPES = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "Save", "SaveV2", "SaveSlices", "Restore",
    "RestoreV2", "RestoreSlice", "MergeV2Checkpoints", "WholeFileReader", "WholeFileReaderV2",
    "TextLineReader", "TextLineReaderV2", "TFRecordReader", "TFRecordReaderV2",
    "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "IdentityReader", "IdentityReaderV2",
    "TextLineDataset", "TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "SaveDataset", "SaveDatasetV2", "LoadDataset",
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary", "WriteRawProtoSummary",
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DatasetToTFRecord",
    "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
}) | REVIEWED_UNSAFE

#: The save/restore ops a SavedModel or a TF1 checkpoint graph holds for its own variables.
SAVER_OP_TYPES = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename",
                            "ShardedFilespec", "Save", "SaveSlices", "Restore", "RestoreSlice"})


class UnsafeGraphError(ModelPersistError, PermissionError):
    """A graph holds ops that touch files, the network or Python; refused without opt-in."""


def op_registry() -> dict[str, Any]:
    """Op name -> OpDef of every op the installed TensorFlow registers (imports TensorFlow)."""
    return dict(_op_registry())


@functools.lru_cache(maxsize=1)
def _op_registry() -> tuple[tuple[str, Any], ...]:
    from ..._tf import import_tensorflow

    import_tensorflow()
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.client import _pywrap_tf_session as c_api

    ops = op_def_pb2.OpList()
    ops.ParseFromString(c_api.TF_GetBuffer(c_api.TF_GetAllOpList()))
    return tuple((op.name, op) for op in ops.op)


def classify(op_def: Any) -> str | None:
    """Why the op is unsafe (a short reason), or None when it is not.

    ``op_def`` is a registry OpDef. Reviewed lists win over the name rules.
    """
    name = op_def.name
    if name in REVIEWED_SAFE:
        return None
    if name in REVIEWED_UNSAFE or _UNSAFE_NAME.search(name):
        return "reviewed: files, Python, or waits that may never end"
    for arg in [*op_def.input_arg, *op_def.attr]:
        if FILE_WORDS & set(arg.name.lower().split("_")):
            return f"its {arg.name!r} names a file, directory or address"
    return None


@functools.lru_cache(maxsize=1)
def unsafe_op_types() -> frozenset[str]:
    """Every registered op :func:`classify` calls unsafe, plus UNSAFE_OP_TYPES (for ops another
    TensorFlow version registers)."""
    derived = {name for name, op in _op_registry() if classify(op) is not None}
    return frozenset(derived) | UNSAFE_OP_TYPES


def unsafe_ops(graph_def: GraphDef, *, allowed: Iterable[str] = ()) -> list[str]:
    """``"node (Op)"`` for every node that touches files, the network or Python when run.

    Looks at the main graph and every library function (``"function/node (Op)"``): op types in
    :func:`unsafe_op_types`, and ``PrintV2`` writing to a file (``output_stream="file://..."``).
    Nodes named in ``allowed`` (``"node"`` or ``"function/node"``) are skipped. Returns them in
    graph order; empty for an ordinary frozen model.
    """
    scopes = _scopes(graph_def)
    # Ops registered since the registry was read (a custom-op library imported later) are
    # classified too: unregistered_ops re-reads the registry when it meets an unknown op. Ops
    # nobody registered cannot run (import_graph_def refuses).
    unregistered_ops(graph_def)
    unsafe = unsafe_op_types()
    skip = set(allowed)
    found = []
    for scope, nodes in scopes:
        for node in nodes:
            if scope + node.name in skip:
                continue
            if node.op in unsafe or (node.op == "PrintV2" and _prints_to_file(node)):
                found.append(f"{scope}{node.name} ({node.op})")
    return found


def _scopes(graph_def: GraphDef) -> list[tuple[str, Any]]:
    """(prefix, nodes) of the main graph ("") and of each library function ("name/")."""
    return [("", graph_def.node)] + [(f.signature.name + "/", f.node_def)
                                     for f in graph_def.library.function]


def unregistered_ops(graph_def: GraphDef) -> list[str]:
    """``"node (Op)"`` for every node whose op the installed TensorFlow does not register (nor
    the graph's library define): what an older TensorFlow cannot import. Empty for most graphs.
    """
    found = _unregistered(graph_def)
    if found:  # registered since the registry was read? read it again
        _op_registry.cache_clear()
        unsafe_op_types.cache_clear()
        found = _unregistered(graph_def)
    return found


def _unregistered(graph_def: GraphDef) -> list[str]:
    functions = {f.signature.name for f in graph_def.library.function}
    known = {name for name, _ in _op_registry()}
    return [f"{scope}{n.name} ({n.op})" for scope, nodes in _scopes(graph_def) for n in nodes
            if n.op not in known and n.op not in functions]


def _prints_to_file(node: Any) -> bool:
    """PrintV2 writes to stderr, stdout, a log, or ``file://<path>``: anything but the first."""
    stream = node.attr["output_stream"].s if "output_stream" in node.attr else b""
    return bool(stream) and not stream.startswith((b"stderr", b"stdout", b"log("))


def refuse(found: list[str], *, fmt: str, path: object, what: str = "graph") -> None:
    """UnsafeGraphError naming the file, the format, the first ops (node and type) and the
    opt-in; no-op if nothing was found."""
    if not found:
        return
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    raise UnsafeGraphError(
        f"{path}: the {what} holds ops that read or write files (or run Python, or may "
        f"block forever) when it runs ({shown}); refused by default, as restoring a {fmt!r} model "
        "needs none. If you trust this file, opt in for this test only: "
        "@pytest.mark.persist(unsafe=True)"
    )


def screen_graph_def(graph_def: GraphDef, *, fmt: str, path: object,
                     allow: bool = False) -> None:
    """Refuse (UnsafeGraphError) a GraphDef holding unsafe ops, unless ``allow`` (the test's
    ``unsafe=True``). No exceptions: a frozen graph needs no file, Python or queue op."""
    if not allow:
        refuse(unsafe_ops(graph_def), fmt=fmt, path=path)
