"""Which ops of a graph read or write files, or run Python, when the graph runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from tensorflow.core.framework.graph_pb2 import GraphDef

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
