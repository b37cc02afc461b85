"""Interface extraction and diff (issue 16) on real TensorFlow artifacts written in the test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_modelpersist import interface
from pytest_modelpersist.interface.diff import diff

import model_zoo


def _scorer(tf: Any, *, arg: str = "x", dtype: Any = None, extra_op: bool = False,
            in_dtype: Any = None) -> Any:
    """A tf.Module whose serving signature takes `arg` and returns {'probs': ...}."""

    class Scorer(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.ones([4, 1]))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], in_dtype or tf.float32,
                                                    name=arg)])
        def serve(self, x: Any) -> Any:
            y = tf.sigmoid(tf.matmul(tf.cast(x, tf.float32), self.w))
            if extra_op:
                y = tf.math.cumsum(y, axis=0)
            return {"probs": tf.cast(y, dtype or tf.float32)}

    return Scorer()


def _savedmodel(tmp_path: Path, name: str, **kwargs: Any) -> dict[str, Any]:
    tf = pytest.importorskip("tensorflow")
    module = _scorer(tf, **kwargs)
    path = tmp_path / name
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    doc = interface.extract("savedmodel", path)
    assert doc is not None
    return doc


def test_savedmodel_interface_reads_signature_without_running(tmp_path: Path) -> None:
    doc = _savedmodel(tmp_path, "a")
    sig = doc["signatures"]["serving_default"]
    assert sig["inputs"] == {"x": {"dtype": "float32", "shape": [None, 4],
                                   "tensor": "serving_default_x:0"}}
    assert list(sig["outputs"]) == ["probs"]
    assert sig["outputs"]["probs"]["dtype"] == "float32"
    assert sig["method"] == "tensorflow/serving/predict"
    assert doc["tags"] == ["serve"]
    assert {"MatMul", "Sigmoid", "StatefulPartitionedCall"} <= set(doc["ops"])
    assert doc["ops"] == sorted(doc["ops"])
    json.dumps(doc)  # JSON-able as it is
    assert diff(doc, _savedmodel(tmp_path, "again")) == []


def test_input_renamed_between_two_saves(tmp_path: Path) -> None:
    before, after = _savedmodel(tmp_path, "a", arg="x"), _savedmodel(tmp_path, "b", arg="inputs")
    assert diff(before, after) == ["serving_default: input 'x' renamed to 'inputs'"]


def test_input_retyped_and_output_dtype_changed(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    before = _savedmodel(tmp_path, "a")
    retyped = _savedmodel(tmp_path, "b", in_dtype=tf.int32)
    # int32 -> float32 inside the graph is one more op: both show
    assert diff(before, retyped) == ["serving_default: input 'x' dtype float32 -> int32",
                                     "ops added: Cast"]
    half = _savedmodel(tmp_path, "c", dtype=tf.float16)
    assert "serving_default: output 'probs' dtype float32 -> float16" in diff(before, half)


def test_added_op_is_named(tmp_path: Path) -> None:
    lines = diff(_savedmodel(tmp_path, "a"), _savedmodel(tmp_path, "b", extra_op=True))
    assert "ops added: Cumsum" in lines


def test_missing_signature(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    before = _savedmodel(tmp_path, "a")
    module = _scorer(tf)
    tf.saved_model.save(module, str(tmp_path / "b"), signatures={"predict": module.serve})
    after = interface.extract("savedmodel", tmp_path / "b")
    assert after is not None
    lines = diff(before, after)
    assert "signature 'serving_default' missing (the artifact has: 'predict')" in lines
    assert "signature 'predict' added" in lines


def _frozen(tmp_path: Path, name: str, output: str) -> Path:
    tf = pytest.importorskip("tensorflow")
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    w = tf.Variable(tf.ones([4, 1]))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def f(x: Any) -> Any:
        return tf.identity(tf.matmul(x, w), name=output)

    graph_def = convert_variables_to_constants_v2(f.get_concrete_function()).graph.as_graph_def()
    path = tmp_path / f"{name}.pb"
    path.write_bytes(graph_def.SerializeToString())
    return path


def test_frozen_graph_tensor_names(tmp_path: Path) -> None:
    a = interface.extract("pb", _frozen(tmp_path, "a", "score"),
                          meta={"inputs": ["x:0"], "outputs": ["Identity:0"]})
    assert a is not None
    assert a["signatures"]["graph"]["inputs"] == {"x:0": {"dtype": "float32",
                                                          "shape": [None, 4]}}
    assert a["signatures"]["graph"]["outputs"]["Identity:0"]["dtype"] == "float32"
    assert "Placeholder" in a["ops"] and "MatMul" in a["ops"]
    # without the artifact's names: Placeholders and the tensors nothing consumes
    b = interface.extract("pb", _frozen(tmp_path, "b", "score"))
    assert b is not None and list(b["signatures"]["graph"]["inputs"]) == ["x:0"]
    renamed = {"signatures": {"graph": {"inputs": {"input:0": {"dtype": "float32",
                                                               "shape": [None, 4]}},
                                        "outputs": a["signatures"]["graph"]["outputs"]}},
               "ops": a["ops"]}
    assert diff(a, renamed) == ["graph: input 'x:0' renamed to 'input:0'"]


def _keras_model(name: str = "features", dtype: str = "float32") -> Any:
    keras = pytest.importorskip("keras")
    inp = keras.Input((4,), name=name)
    hidden = keras.layers.Dense(3, name="hidden")(inp)
    out = keras.layers.Dense(1, activation="sigmoid", name="probs", dtype=dtype)(hidden)
    return keras.Model(inp, out)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_file_interface(tmp_path: Path, suffix: str) -> None:
    fmt = "keras" if suffix == ".keras" else "h5"
    path = tmp_path / f"m{suffix}"
    _keras_model().save(str(path))
    doc = interface.extract(fmt, path)
    assert doc == {
        "signatures": {"model": {"inputs": {"features": {"dtype": "float32",
                                                         "shape": [None, 4]}},
                                 "outputs": {"probs": {"dtype": "float32"}}}},
        "layers": ["Dense", "Functional", "InputLayer"],
    }
    other = tmp_path / f"n{suffix}"
    _keras_model(name="inputs", dtype="float16").save(str(other))
    new = interface.extract(fmt, other)
    assert new is not None
    assert diff(doc, new) == ["model: input 'features' renamed to 'inputs'",
                              "model: output 'probs' dtype float32 -> float16"]


def test_custom_layer_class_is_part_of_the_interface() -> None:
    from pytest_modelpersist.interface.keras_files import model_config_interface

    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"name": "x", "batch_shape": [None, 2],
                                                "dtype": "float32"}},
        {"class_name": "Scale", "registered_name": "lab>Scale",
         "config": {"name": "scale", "dtype": "mixed_bfloat16"}}]}}
    doc = model_config_interface(config)
    assert doc["signatures"]["model"] == {"inputs": {"x": {"dtype": "float32",
                                                           "shape": [None, 2]}},
                                          "outputs": {"scale": {"dtype": "bfloat16"}}}
    assert doc["layers"] == ["InputLayer", "Sequential", "lab>Scale"]


def test_checkpoint_interfaces_list_variable_keys(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    model_zoo.keras3_only("Keras 3's object paths in checkpoint keys (model/_operations/1/)")
    model = _keras_model()
    prefix = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    doc = interface.extract("tf_checkpoint", prefix)
    assert doc is not None
    assert doc["variables"]["model/_operations/1/_kernel"] == {"dtype": "float32",
                                                               "shape": [4, 3]}
    model.save_weights(str(tmp_path / "m.weights.h5"))
    weights = interface.extract("weights_h5", tmp_path / "m.weights.h5")
    assert weights is not None
    assert weights["variables"]["layers/dense/vars/0"]["shape"] == [4, 3]
    smaller = {"variables": {k: v for k, v in weights["variables"].items() if "dense_1" not in k}}
    assert diff(weights, smaller) == [
        "variable 'layers/dense_1/vars/0' missing (was float32 [3, 1])",
        "variable 'layers/dense_1/vars/1' missing (was float32 [1])",
    ]


def test_tf1_meta_graph_interface(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
        v1 = tf.compat.v1.get_variable("v1", initializer=tf.ones([1]))
        tf.compat.v1.add_to_collection("scores", tf.add(x, v1, name="add"))
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(sess, str(tmp_path / "model"))
    doc = interface.extract("ckpt", tmp_path / "model",
                            meta={"prefix": "model", "inputs": ["x:0"], "outputs": ["add:0"]})
    assert doc is not None
    assert doc["signatures"]["graph"]["inputs"] == {"x:0": {"dtype": "float32",
                                                            "shape": [None, 1]}}
    assert doc["signatures"]["graph"]["outputs"] == {"add:0": {"dtype": "float32",
                                                               "shape": [None, 1]}}
    assert "scores" in doc["collections"] and "variables" in doc["collections"]
    assert {"AddV2", "SaveV2", "RestoreV2"} <= set(doc["ops"])
    assert doc["variables"] == {"v1": {"dtype": "float32", "shape": [1]}}


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"\xff\x00not a protobuf" * 3)
    with pytest.raises(ValueError, match="saved_model.pb"):
        interface.extract("savedmodel", tmp_path / "sm")
    (tmp_path / "m.keras").write_bytes(b"PK but no zip")
    with pytest.raises(ValueError, match=r"m\.keras: no readable config\.json"):
        interface.extract("keras", tmp_path / "m.keras")
    assert interface.extract("some_plugin_format", tmp_path) is None


def test_diff_lines_for_sets_and_shapes() -> None:
    old = {"signatures": {"s": {"inputs": {"a": {"dtype": "float32", "shape": [None, 4]},
                                           "b": {"dtype": "int64", "shape": [None]}},
                                "outputs": {}}},
           "ops": ["A", "B"], "layers": ["Dense"]}
    new = {"signatures": {"s": {"inputs": {"a": {"dtype": "float32", "shape": [None, 5]},
                                           "c": {"dtype": "string", "shape": None}},
                                "outputs": {}}},
           "ops": ["A", "C"]}
    assert diff(old, new) == [
        "s: input 'b' renamed to 'c' (dtype int64 -> string, shape [None] -> <unknown rank>)",
        "s: input 'a' shape [None, 4] -> [None, 5]",
        "ops added: C",
        "ops removed: B",
    ]
    two_gone = {"signatures": {"s": {"inputs": {"p": {"dtype": "float32", "shape": [1]},
                                                "q": {"dtype": "int32", "shape": [1]}}}}}
    two_new = {"signatures": {"s": {"inputs": {"r": {"dtype": "int32", "shape": [1]},
                                               "t": {"dtype": "int8", "shape": [1]}}}}}
    assert diff(two_gone, two_new) == ["s: input 'q' renamed to 'r'",
                                       "s: input 'p' missing (was float32 [1])",
                                       "s: input 't' added (int8 [1])"]
    assert np.all([diff(d, d) == [] for d in (old, new, two_gone)])
