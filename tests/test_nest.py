"""The nested input/output contract (pytest_modelpersist.nest): pure numpy, plus tf.nest parity."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import namedtuple

import numpy as np
import pytest

from pytest_modelpersist import nest

Heads = namedtuple("Heads", ["score", "label"])


def sample() -> dict:
    return {
        "y10": np.arange(3, dtype=np.float32),
        "y2": np.ones((2, 2), np.float64),
        "heads": [np.int64(4), (np.array([True, False]), Heads(np.float32(1.5), b"cat"))],
        "text": np.array(["a", "bb"]),
    }


def test_paths_follow_keys_and_positions_not_sort_order() -> None:
    value = sample()
    assert nest.leaf_paths(value) == [
        "heads/0", "heads/1/0", "heads/1/1/score", "heads/1/1/label", "text", "y10", "y2"]
    named = nest.named_leaves(value)
    assert named["y2"].shape == (2, 2) and named["y10"].shape == (3,)


def test_flat_lists_and_lone_arrays_keep_the_golden_names() -> None:
    a = np.zeros(2)
    assert nest.leaf_paths(a) == ["output_0"]
    assert nest.leaf_paths([a, a, a]) == ["output_0", "output_1", "output_2"]
    assert nest.leaf_paths([a, (a, a)]) == ["output_0", "output_1/0", "output_1/1"]
    assert nest.leaf_paths((a, a), nest.INPUT) == ["input_0", "input_1"]
    assert nest.leaf_paths({"a/b": a, "c%": a}) == ["a%2Fb", "c%25"]


def test_structure_survives_json_and_packs_back() -> None:
    value = sample()
    spec = json.loads(json.dumps(nest.structure_of(value)))
    flat = nest.flatten(value)
    back = nest.pack(spec, flat)
    assert sorted(back) == sorted(value)
    assert isinstance(back["heads"], list) and isinstance(back["heads"][1], tuple)
    heads = back["heads"][1][1]
    assert type(heads).__name__ == "Heads" and heads._fields == ("score", "label")
    assert heads.label == b"cat"
    assert nest.leaf_paths(spec) == nest.leaf_paths(value)
    assert nest.count_leaves(spec) == len(flat) == 7


def test_pack_refuses_the_wrong_number_of_values() -> None:
    spec = nest.structure_of([1, 2])
    with pytest.raises(nest.NestError, match="holds 2 values, got 3"):
        nest.pack(spec, [1, 2, 3])


def test_none_holds_no_leaf() -> None:
    assert nest.flatten(None) == [] and nest.pack(nest.structure_of(None), []) is None
    assert nest.flatten({"a": None, "b": 1}) == [1]


def test_mixed_key_types_still_flatten_stably() -> None:
    value = {1: np.zeros(1), "a": np.ones(1)}
    assert nest.leaf_paths(value) == nest.leaf_paths(dict(reversed(value.items())))


def test_as_array_turns_tf_string_results_into_bytes_arrays() -> None:
    objects = np.array([b"ab", b"c"], dtype=object).reshape(2, 1)
    arr = nest.as_array(objects)
    assert arr.dtype.kind == "S" and arr.shape == (2, 1) and arr[0, 0] == b"ab"
    assert nest.as_array(np.array(["x"], dtype=object)).dtype.kind == "U"
    with pytest.raises(nest.NestError, match="out holds Python objects .*dict"):
        nest.as_array(np.array([{}, {}], dtype=object), "out")


def test_to_numpy_refuses_unknown_objects_naming_path_and_type() -> None:
    class Thing:
        pass

    with pytest.raises(nest.NestError, match=r"heads/0 holds Python objects \(Thing\)"):
        nest.to_numpy({"heads": [Thing()]})


def test_bfloat16_bool_int_leaves_keep_their_dtypes() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    value = {"b": np.array([1.5], ml_dtypes.bfloat16), "m": np.array([True]), "i": np.int8(3)}
    out = nest.to_numpy(value)
    assert out["b"].dtype == ml_dtypes.bfloat16 and out["m"].dtype == bool
    assert out["i"].dtype == np.int8
    specs = nest.leaf_specs({"t": np.array([b"a"]), **value})
    assert [(s["path"], s["dtype"]) for s in specs] == [
        ("b", "bfloat16"), ("i", "int8"), ("m", "bool"), ("t", "string")]


def test_call_args_list_positional_dict_keywords() -> None:
    x, y = np.zeros(1), np.ones(1)
    assert nest.call_args([x, y]) == ((x, y), {})
    assert nest.call_args({"x": x, "offset": y}) == ((), {"x": x, "offset": y})
    assert nest.call_args(x)[0][0] is x and nest.call_args(None) == ((), {})
    point = Heads(x, y)
    assert nest.call_args(point) == ((point,), {})
    with pytest.raises(nest.NestError, match="key 1 is not a str"):
        nest.call_args({1: x})


def test_align_pairs_by_path_and_names_what_one_side_lacks() -> None:
    exp = {"horizon_7d": 1, "horizon_14d": 2, "horizon_28d": 3}
    act = {"horizon_14d": 20, "horizon_28d": 30, "horizon_7d": 10, "extra": 0}
    got = nest.align(exp, act)
    assert got.names == ["horizon_7d", "horizon_14d", "horizon_28d"]
    assert got.actual == [10, 20, 30]
    assert nest.describe_difference(got) == "unexpected output(s) extra"
    assert nest.describe_difference(nest.align(act, exp)) == "missing output(s) extra"


def test_the_module_does_not_import_tensorflow() -> None:
    code = ("import sys, pytest_modelpersist.nest; "
            "print(any(m.startswith(('tensorflow', 'keras')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# ---- against TensorFlow itself ---------------------------------------------------------------


def test_flatten_order_is_tf_nest_order() -> None:
    tf = pytest.importorskip("tensorflow")
    value = sample()
    ours = nest.flatten(value)
    theirs = tf.nest.flatten(value)
    assert len(ours) == len(theirs)
    assert all(a is b for a, b in zip(ours, theirs, strict=True))


def test_sparse_and_ragged_results_are_compared_by_parts() -> None:
    tf = pytest.importorskip("tensorflow")
    sparse = tf.sparse.SparseTensor([[0, 1], [2, 0]], [1.0, 2.0], [3, 2])
    ragged = tf.ragged.constant([[1, 2], [], [3]])
    out = nest.to_numpy({"s": sparse, "r": ragged, "t": tf.constant(["a", "b"])})
    names, arrays = nest.flat_arrays(out)
    assert names == ["r/flat_values", "r/row_splits/0", "s/indices", "s/values",
                     "s/dense_shape", "t"]
    assert arrays[1].tolist() == [0, 2, 2, 3] and arrays[3].tolist() == [1.0, 2.0]
    assert arrays[5].dtype.kind == "S"
    back = nest.pack(json.loads(json.dumps(nest.structure_of(out))), arrays)
    assert isinstance(back["s"], nest.Sparse) and isinstance(back["r"], nest.Ragged)
    with pytest.raises(nest.NestError, match="ta is a .*TensorArray"):
        nest.to_numpy({"ta": tf.TensorArray(tf.float32, size=1)})
