"""The op screen (formats/pb/screen.py) against the installed TensorFlow's op registry.

Every registered op must be classified: unsafe by the screen's rules or reviewed lists, or
reviewed as safe (REVIEWED_SAFE, or tests/data/tf_ops_reviewed_safe.txt). A new TensorFlow
version's ops fail here until someone reviews them, so a new file-touching op cannot slip in
unnoticed (and one whose inputs are named like files is refused even before the review).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from pytest_modelpersist.formats.pb import screen  # noqa: E402

REVIEWED = Path(__file__).with_name("data") / "tf_ops_reviewed_safe.txt"


def reviewed_safe() -> set[str]:
    lines = REVIEWED.read_text().splitlines()
    return {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}


def test_every_registered_op_is_classified():
    registry = screen.op_registry()
    assert len(registry) > 1000  # the whole registry, not a Python-visible subset
    safe = reviewed_safe() | screen.REVIEWED_SAFE
    unclassified = sorted(name for name, op in registry.items()
                          if screen.classify(op) is None and name not in safe)
    assert not unclassified, (
        f"{len(unclassified)} ops of this TensorFlow are not classified: {unclassified[:40]}. "
        f"Review each: add it to {REVIEWED.name} (safe) or to screen.REVIEWED_UNSAFE.")


def test_reviewed_lists_do_not_contradict_each_other():
    registry = screen.op_registry()
    flagged_as_safe = sorted(n for n in reviewed_safe() if n in registry
                             and screen.classify(registry[n]) is not None)
    assert not flagged_as_safe, f"listed as safe but unsafe by the rules: {flagged_as_safe}"
    assert not screen.REVIEWED_SAFE & screen.REVIEWED_UNSAFE


@pytest.mark.parametrize("op", [
    "WriteFile", "ReadFile", "MatchingFiles", "SaveV2", "RestoreV2", "MergeV2Checkpoints",
    "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "DebugIdentity", "DebugIdentityV2",
    "DebugIdentityV3", "DebugNanCount", "InitializeTableFromTextFileV2", "PyFunc",
    "PyFuncStateless", "EagerPyFunc", "CreateSummaryFileWriter", "WriteScalarSummary",
    "FIFOQueueV2", "QueueDequeueV2", "WholeFileReaderV2", "ReaderReadV2", "TFRecordDataset",
    "TextLineDataset", "CSVDatasetV2", "SqlDataset", "ImmutableConst", "LoadDataset",
    "SnapshotDatasetV2", "_Recv", "CollectiveReduceV2", "DataServiceDatasetV4", "RpcClient",
    "FixedUnigramCandidateSampler", "LoadAndRemapMatrix", "FileSystemSetConfiguration",
])
def test_known_dangerous_ops_are_unsafe(op):
    registry = screen.op_registry()
    assert op in registry, f"{op} is not registered in this TensorFlow"
    assert screen.classify(registry[op]) is not None
    assert op in screen.unsafe_op_types()


@pytest.mark.parametrize("op", [
    "MatMul", "Conv2D", "Relu", "Const", "Placeholder", "Identity", "StatefulPartitionedCall",
    "PartitionedCall", "While", "If", "ReadVariableOp", "VarHandleOp", "RegexReplace",
    "StaticRegexFullMatch", "PrintV2", "HashTableV2", "LookupTableFindV2", "MapDataset",
])
def test_model_ops_are_safe(op):
    registry = screen.op_registry()
    assert screen.classify(registry[op]) is None
    assert op not in screen.unsafe_op_types()


def test_the_static_list_stays_inside_the_derived_screen():
    assert screen.UNSAFE_OP_TYPES <= screen.unsafe_op_types()


def test_print_v2_is_unsafe_only_when_it_writes_a_file():
    tf = pytest.importorskip("tensorflow")
    graphs = {}
    for stream in ("stderr", "log(info)", "file:///tmp/x.txt"):
        with tf.Graph().as_default() as g:
            tf.raw_ops.PrintV2(input=tf.constant("hi"), output_stream=stream)
        graphs[stream] = g.as_graph_def()
    assert screen.unsafe_ops(graphs["stderr"]) == []
    assert screen.unsafe_ops(graphs["log(info)"]) == []
    assert [s.split(" ")[1] for s in screen.unsafe_ops(graphs["file:///tmp/x.txt"])] == [
        "(PrintV2)"]
