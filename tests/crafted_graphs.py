"""Crafted model files for the untrusted-artifact tests (issue 14): real TensorFlow graphs whose
outputs (or load-time ops) touch files, run Python or block. Each builder returns what the test
needs to prove the effect did or did not happen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_modelpersist import GraphModel

import model_zoo


def graph_model(build: Callable[[Any, Any], Any], *, variable: bool = False) -> GraphModel:
    """A TF1 graph model ``y = x * 2`` whose output also depends on ``build(tf, x)``'s op.

    ``variable`` adds a variable to the product (the ckpt format needs one to save).
    """
    tf = model_zoo.import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        scale = 2.0
        if variable:
            scale = tf.compat.v1.get_variable("scale", initializer=2.0, use_resource=True)
        side = build(tf, x)
        with tf.control_dependencies([side]):
            y = tf.identity(x * scale, name="y")
        session = tf.compat.v1.Session(graph=graph)
        if variable:
            session.run(tf.compat.v1.global_variables_initializer())
    return GraphModel(session, inputs=[x], outputs=[y])


def write_file(marker: Path) -> Callable[[Any, Any], Any]:
    return lambda tf, x: tf.io.write_file(str(marker), "ran")


def dataset_to_tfrecord(marker: Path) -> Callable[[Any, Any], Any]:
    def build(tf: Any, x: Any) -> Any:
        dataset = tf.data.Dataset.from_tensors(tf.constant(["ran"]))
        return tf.raw_ops.DatasetToTFRecord(input_dataset=dataset._variant_tensor,  # noqa: SLF001
                                            filename=str(marker), compression_type="")
    return build


def debug_identity_v1(dump_dir: Path) -> Callable[[Any, Any], Any]:
    def build(tf: Any, x: Any) -> Any:
        return tf.raw_ops.DebugIdentity(input=x, tensor_name="x:0",
                                        debug_urls=[f"file://{dump_dir}"])
    return build


def py_func(marker: Path) -> Callable[[Any, Any], Any]:
    def build(tf: Any, x: Any) -> Any:
        def effect(value: Any) -> Any:
            marker.write_text("ran")
            return value
        return tf.compat.v1.py_func(effect, [x], tf.float32)
    return build


def table_from_text_file(secret: Path) -> GraphModel:
    """A graph whose output is the lines of ``secret`` (InitializeTableFromTextFileV2 reading a
    file outside any artifact), beside ``y = x * 2``."""
    tf = model_zoo.import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        table = tf.raw_ops.HashTableV2(key_dtype=tf.int64, value_dtype=tf.string,
                                       shared_name="t")
        init = tf.raw_ops.InitializeTableFromTextFileV2(
            table_handle=table, filename=str(secret), key_index=-1, value_index=-2)
        with tf.control_dependencies([init]):
            lines = tf.raw_ops.LookupTableFindV2(table_handle=table,
                                                 keys=tf.constant([0, 1], tf.int64),
                                                 default_value="")
        leaked = tf.identity(tf.strings.length(lines), name="leaked")
        y = tf.identity(x * 2.0, name="y")
    return GraphModel(tf.compat.v1.Session(graph=graph), inputs=[x], outputs=[y, leaked])


def dequeue_forever() -> Callable[[Any, Any], Any]:
    """An op that blocks forever: a dequeue from a queue nobody fills."""
    def build(tf: Any, x: Any) -> Any:
        queue = tf.queue.FIFOQueue(1, tf.float32, shapes=[()])
        return queue.dequeue()
    return build
