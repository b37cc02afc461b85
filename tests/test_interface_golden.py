"""The interface entry of golden sidecars: record, pass, fail with the diff, update."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_modelpersist.interface_golden import by_toolchain, check_interface, toolchain

OLD = {"signatures": {"serving_default": {"inputs": {"x": {"dtype": "float32",
                                                           "shape": [None, 4]}},
                                          "outputs": {"probs": {"dtype": "float32"}}}},
       "ops": ["MatMul", "Sigmoid"]}
NEW = {"signatures": {"serving_default": {"inputs": {"inputs": {"dtype": "float32",
                                                                "shape": [None, 4]}},
                                          "outputs": {"probs": {"dtype": "float16"}}}},
       "ops": ["DisableCopyOnRead", "MatMul", "Sigmoid"]}
locked: list[Path] = []


@contextlib.contextmanager
def lock(path: Path) -> Iterator[None]:
    locked.append(path)
    yield


def sidecar(tmp_path: Path, **extra: Any) -> Path:
    path = tmp_path / "t.golden.json"
    path.write_text(json.dumps({"golden_format": 1, "test": "t", "arrays": "t.0.npz",
                                "outputs": {}, **extra}))
    return path


def check(path: Path, fmt: str, current: Any, *, update: bool = False,
          tc: str = "tf2.21") -> str | None:
    return check_interface(path, fmt, current, toolchain=tc, update=update, lock=lock,
                           update_command='pytest "t.py::t[savedmodel]" --update-golden')


def test_old_sidecar_without_interfaces_passes_and_update_records(tmp_path: Path) -> None:
    path = sidecar(tmp_path)
    assert check(path, "savedmodel", OLD) is None
    assert "interfaces" not in json.loads(path.read_text())
    assert check(path, "savedmodel", OLD, update=True) == "recorded"
    doc = json.loads(path.read_text())
    assert doc["interfaces"] == {"tf2.21": {"savedmodel": OLD}} and doc["test"] == "t"
    assert locked[-1] == path
    assert check(path, "savedmodel", OLD) is None  # same interface: nothing to do


def test_changed_interface_fails_with_readable_lines(tmp_path: Path) -> None:
    path = sidecar(tmp_path, interfaces={"tf2.21": {"savedmodel": OLD,
                                                    "keras": {"layers": ["Dense"]}}})
    with pytest.raises(pytest.fail.Exception) as info:
        check(path, "savedmodel", NEW)
    assert str(info.value).splitlines() == [
        f"[savedmodel] the savedmodel artifact's interface differs from the one recorded in "
        f"the golden {path} (what serving code, the C API and other clients rely on):",
        "  serving_default: input 'x' renamed to 'inputs'",
        "  serving_default: output 'probs' dtype float32 -> float16",
        "  ops added: DisableCopyOnRead",
        'to accept the new interface: pytest "t.py::t[savedmodel]" --update-golden',
    ]
    assert check(path, "savedmodel", NEW, update=True) == "updated"
    doc = json.loads(path.read_text())
    assert doc["interfaces"] == {"tf2.21": {"keras": {"layers": ["Dense"]}, "savedmodel": NEW}}


def test_nothing_to_compare(tmp_path: Path) -> None:
    assert check(tmp_path / "absent.golden.json", "pb", OLD, update=True) is None
    assert not (tmp_path / "absent.golden.json").exists()
    assert check(sidecar(tmp_path), "third_party", None, update=True) is None
    broken = tmp_path / "b.golden.json"
    broken.write_text("{not json")
    assert check(broken, "pb", OLD, update=True) is None
    assert broken.read_text() == "{not json"


def test_outputs_update_keeps_the_interfaces(tmp_path: Path) -> None:
    import numpy as np

    from pytest_modelpersist import golden

    path = tmp_path / "t.golden.json"
    golden.write_golden(path, [np.zeros(2, np.float32)], names=["output_0"], test="t",
                        inputs_crc=None)
    assert check(path, "pb", OLD, update=True) == "recorded"
    golden.write_golden(path, [np.ones(2, np.float32)], names=["output_0"], test="t",
                        inputs_crc=None)
    assert json.loads(path.read_text())["interfaces"] == {"tf2.21": {"pb": OLD}}
    assert golden.read_golden(path).arrays[0].tolist() == [1.0, 1.0]


def test_toolchain_keys() -> None:
    assert toolchain("2.21.0", keras2=False) == "tf2.21"
    assert toolchain("2.15.1", keras2=True) == "tf2.15+keras2"
    assert toolchain("2.16.0-rc1", keras2=True) == "tf2.16+keras2"


def test_each_toolchain_has_its_interface(tmp_path: Path) -> None:
    path = sidecar(tmp_path, interfaces={"tf2.21": {"savedmodel": OLD}})
    # Another TensorFlow, nothing recorded for it yet: compared with the nearest recorded.
    with pytest.raises(pytest.fail.Exception) as info:
        check(path, "savedmodel", NEW, tc="tf2.15+keras2")
    first = str(info.value).splitlines()[0]
    assert first.endswith(f"the golden {path} for tf2.21 (none yet for tf2.15+keras2, which "
                          "saved this artifact) (what serving code, the C API and other "
                          "clients rely on):"), first
    assert check(path, "savedmodel", NEW, tc="tf2.15+keras2", update=True) == "recorded"
    assert json.loads(path.read_text())["interfaces"] == {
        "tf2.15+keras2": {"savedmodel": NEW}, "tf2.21": {"savedmodel": OLD}}
    # Each version now checks its own entry; a change on one fails there only.
    assert check(path, "savedmodel", NEW, tc="tf2.15+keras2") is None
    assert check(path, "savedmodel", OLD) is None
    with pytest.raises(pytest.fail.Exception):
        check(path, "savedmodel", OLD, tc="tf2.15+keras2")
    with pytest.raises(pytest.fail.Exception):
        check(path, "savedmodel", NEW)
    # An upgrade whose interface did not change passes; --update-golden writes its own entry.
    assert check(path, "savedmodel", OLD, tc="tf2.22") is None
    assert check(path, "savedmodel", OLD, tc="tf2.22", update=True) == "recorded"
    assert sorted(json.loads(path.read_text())["interfaces"]) == [
        "tf2.15+keras2", "tf2.21", "tf2.22"]


def test_nearest_toolchain_prefers_the_same_keras_then_the_closest_older(tmp_path: Path) -> None:
    marked = {name: {"layers": [name]} for name in ("a", "b", "c")}
    path = sidecar(tmp_path, interfaces={"tf2.15+keras2": {"keras": marked["a"]},
                                         "tf2.18": {"keras": marked["b"]},
                                         "tf2.20": {"keras": marked["c"]}})
    assert check(path, "keras", marked["a"], tc="tf2.21+keras2") is None
    assert check(path, "keras", marked["b"], tc="tf2.19") is None
    assert check(path, "keras", marked["c"], tc="tf2.21") is None


def test_sidecars_before_toolchain_keys_are_their_tensorflows(tmp_path: Path) -> None:
    import numpy as np

    from pytest_modelpersist import golden

    path = sidecar(tmp_path, interfaces={"savedmodel": OLD},
                   recorded_with={"tensorflow": "2.21.0"})
    assert by_toolchain(json.loads(path.read_text())) == {"tf2.21": {"savedmodel": OLD}}
    assert check(path, "savedmodel", OLD) is None
    with pytest.raises(pytest.fail.Exception):
        check(path, "savedmodel", NEW)
    # Re-recording the outputs elsewhere keeps them as the TensorFlow that recorded them.
    golden.write_golden(path, [np.ones(2, np.float32)], names=["output_0"], test="t",
                        inputs_crc=None)
    assert json.loads(path.read_text())["interfaces"] == {"tf2.21": {"savedmodel": OLD}}
    assert check(path, "pb", OLD, tc="tf2.15+keras2", update=True) == "recorded"
    assert json.loads(path.read_text())["interfaces"] == {
        "tf2.15+keras2": {"pb": OLD}, "tf2.21": {"savedmodel": OLD}}


# ---- through the plugin: two runs of a test whose model changed in between -----------------

SCORER_TEST = '''
import numpy as np
import pytest
import tensorflow as tf

ARG, IN_DTYPE, EXTRA_OP = {arg!r}, tf.{in_dtype}, {extra_op!r}


class Scorer(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.ones([4, 1]))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], IN_DTYPE, name=ARG)])
    def __call__(self, x):
        y = tf.sigmoid(tf.matmul(tf.cast(x, tf.float32), self.w))
        return tf.maximum(y, 0.0) if EXTRA_OP else y


@pytest.mark.persist(formats=["savedmodel", "pb"], loaders=["inprocess"])
def test_scorer(persist):
    persist.check(Scorer(), np.ones((2, 4), IN_DTYPE.as_numpy_dtype), build=Scorer)
'''


def only_toolchain(doc: dict[str, Any]) -> dict[str, Any]:
    """The interfaces of the one toolchain a sidecar holds (the running TensorFlow's)."""
    import tensorflow as tf

    (key, found), = doc["interfaces"].items()
    assert key == toolchain(tf.__version__, keras2=False)
    return found


def write_scorer(pytester: pytest.Pytester, *, arg: str = "x", in_dtype: str = "float32",
                 extra_op: bool = False) -> None:
    pytester.makepyfile(test_scorer=SCORER_TEST.format(arg=arg, in_dtype=in_dtype,
                                                       extra_op=extra_op))


@pytest.mark.parametrize(("change", "lines"), [
    ({"arg": "inputs"}, ["  serving_default: input 'x' renamed to 'inputs'",
                         "  graph: input 'x:0' renamed to 'inputs:0'"]),
    ({"in_dtype": "float64"}, ["  serving_default: input 'x' dtype float32 -> float64"]),
    ({"extra_op": True}, ["  ops added: Maximum"]),
])
def test_interface_change_between_two_runs_fails(pytester: pytest.Pytester, change: Any,
                                                  lines: list[str]) -> None:
    write_scorer(pytester)
    pytester.runpytest("--update-golden").assert_outcomes(passed=2)
    sidecar = pytester.path / "goldens" / "test_scorer" / "test_scorer.golden.json"
    recorded = only_toolchain(json.loads(sidecar.read_text()))
    assert sorted(recorded) == ["pb", "savedmodel"]
    assert recorded["savedmodel"]["signatures"]["serving_default"]["inputs"]["x"]["dtype"] == (
        "float32")
    write_scorer(pytester, **change)
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*[[]savedmodel[]] the savedmodel artifact's interface "
                                 "differs from the one recorded in the golden*"])
    for line in lines:
        assert line in result.stdout.lines, result.stdout.str()
    result.stdout.fnmatch_lines(['*to accept the new interface: pytest "test_scorer.py::'
                                 'test_scorer[[]savedmodel[]]" --update-golden*'])


def test_update_accepts_and_old_sidecars_pass(pytester: pytest.Pytester) -> None:
    write_scorer(pytester)
    pytester.runpytest("--update-golden").assert_outcomes(passed=2)
    sidecar = pytester.path / "goldens" / "test_scorer" / "test_scorer.golden.json"
    doc = json.loads(sidecar.read_text())
    del doc["interfaces"]  # a sidecar recorded before interfaces existed
    sidecar.write_text(json.dumps(doc))
    write_scorer(pytester, arg="inputs")
    pytester.runpytest().assert_outcomes(passed=2)
    assert "interfaces" not in json.loads(sidecar.read_text())
    pytester.runpytest("--update-golden").assert_outcomes(passed=2)
    recorded = only_toolchain(json.loads(sidecar.read_text()))
    assert list(recorded["savedmodel"]["signatures"]["serving_default"]["inputs"]) == ["inputs"]
    write_scorer(pytester, arg="renamed_again")
    pytester.runpytest().assert_outcomes(failed=2)
    pytester.runpytest("--update-golden").assert_outcomes(passed=2)
    pytester.runpytest().assert_outcomes(passed=2)
