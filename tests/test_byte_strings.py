"""Byte strings ending in NUL bytes stay exact: inputs, outputs, loaders and goldens.

numpy's fixed-width bytes drop trailing NULs (``np.array([b"a\\x00"])[0] == b"a"``); a
serialized tf.train.Example whose last float is 0.0 ends in four of them. Fed through such an
array, a serving model parsing Examples got other bytes than the test gave, and an output that
lost its NULs compared equal to the right one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pytest_modelpersist import byte_strings
from pytest_modelpersist import golden as gf
from pytest_modelpersist._tf import import_tensorflow
from pytest_modelpersist.nest import as_array

pytestmark = pytest.mark.persist(golden=False)

WITH_NULS = [b"\n\x04\x00\x00", b"", b"\x00", b"plain"]


def test_an_array_with_trailing_nuls_stays_exact_and_others_stay_compact():
    exact = as_array(np.array(WITH_NULS, dtype=object))
    assert exact.dtype == object and exact.tolist() == WITH_NULS
    compact = as_array(np.array([b"a", b"b\x00c"], dtype=object))
    assert compact.dtype.kind == "S" and compact.tolist() == [b"a", b"b\x00c"]


@pytest.mark.parametrize("shape", [(4,), (2, 2), (0,)])
def test_pack_and_unpack_round_trip_through_an_npz_without_pickle(tmp_path, shape):
    values = WITH_NULS[: int(np.prod(shape))]
    exact = np.empty(len(values), object)
    exact[:] = values
    arrays = {"a": exact.reshape(shape), "b": np.arange(3)}
    np.savez(tmp_path / "x.npz", **byte_strings.pack(arrays))
    with np.load(tmp_path / "x.npz", allow_pickle=False) as npz:
        back = byte_strings.unpack(npz)
    assert back["a"].shape == shape and back["a"].tolist() == arrays["a"].tolist()
    assert back["b"].tolist() == [0, 1, 2]


def test_golden_keeps_the_nuls_and_a_stripped_output_is_not_equal(tmp_path):
    exact = as_array(np.array(WITH_NULS, dtype=object))
    golden = gf.write_golden(tmp_path / "t.golden.json", [exact], names=["out"], test="t",
                             inputs_crc=None)
    assert golden.doc["outputs"]["out"]["dtype"] == byte_strings.DTYPE_NAME
    back = gf.read_golden(tmp_path / "t.golden.json").arrays[0]
    assert back.tolist() == WITH_NULS
    stripped = np.array(WITH_NULS, dtype=bytes)  # what numpy's S makes of them
    assert not np.array_equal(back, stripped.astype(object))


def example_parser() -> Any:
    tf = import_tensorflow()

    class Parse(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, serialized: Any) -> Any:
            parsed = tf.io.parse_example(
                serialized, {"f": tf.io.FixedLenFeature([1], tf.float32)})
            return {"length": tf.strings.length(serialized), "echo": serialized,
                    "f": parsed["f"]}

    return Parse()


def serialized_examples() -> np.ndarray:
    tf = import_tensorflow()
    data = [tf.train.Example(features=tf.train.Features(feature={"f": tf.train.Feature(
        float_list=tf.train.FloatList(value=[v]))})).SerializeToString() for v in (0.0, 1.5)]
    assert data[0].endswith(b"\x00\x00\x00\x00")
    return np.array(data, dtype=object)


@pytest.mark.persist(formats=["savedmodel", "pb"], loaders=["inprocess", "subprocess", "capi"])
def test_serialized_examples_ending_in_nuls_cross_every_loader_exactly(persist):
    data = serialized_examples()
    result = persist.check(example_parser(), data)
    out = result.actual[0]
    assert out["length"].tolist() == [len(d) for d in data]
    assert out["echo"].tolist() == data.tolist()
    assert out["f"].ravel().tolist() == [0.0, 1.5]
