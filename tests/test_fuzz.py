"""Property-based tests (hypothesis) of what the plugin reads and compares.

Every property states its number of examples (``max_examples``) in its name and docstring;
`deadline=None` because a golden write fsyncs. No example database is written
(`database=None`): runs do not depend on earlier failures (hypothesis still caches constants
in the gitignored `.hypothesis/`).

* comparison (compare.py): an array matches itself; NaN only matches NaN at the same place;
  an infinity only the same infinity; tolerance is monotone; a dtype or shape difference
  always fails; comparing and reporting never raise, whatever the two arrays are;
* golden files (golden.py): write -> read round trip of random dtypes and shapes; randomly
  mutated arrays or sidecar bytes, and random sidecar documents, either raise GoldenError
  naming the file or give back exactly the written arrays;
* frozen graphs (formats/pb, the `pb` format): mutated bytes of a real frozen graph checked
  through `persist.check`, in a subprocess (a TensorFlow abort would kill pytest): a failure
  naming [pb], the file and the cause, or a pass when the mutant's outputs are identical —
  never a crash, a hang or a raw exception;
* SavedModel ``saved_model.pb`` and ckpt ``.meta`` protos (field-level edits: op types,
  inputs, attrs, signatures, saver_def, init ops, asset names), in a subprocess: a failure
  naming the format and the file (often the op screen's refusal), or the original outputs; no
  mutant writes a file.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pytest_modelpersist import golden as gf
from pytest_modelpersist.compare import (
    Tolerance,
    compare_array,
    compare_outputs,
)
from pytest_modelpersist.report import mismatch_report

HERE = Path(__file__).parent
FUZZ = {"database": None, "deadline": None,
        "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}

try:
    import ml_dtypes

    BFLOAT16 = [np.dtype(ml_dtypes.bfloat16)]
except ImportError:  # pragma: no cover - ships with TensorFlow
    BFLOAT16 = []

FLOATS = [np.dtype(t) for t in ("float16", "float32", "float64")]
COMPLEX = [np.dtype(t) for t in ("complex64", "complex128")]
INTS = [np.dtype(t) for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                              "uint64")]
NUMERIC = FLOATS + COMPLEX + INTS + [np.dtype(bool)] + BFLOAT16
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)


def _plain_float_array(dtype: np.dtype, shape: tuple[int, ...]) -> st.SearchStrategy:
    """Floats with NaN and +-Inf at random places (bfloat16 drawn as float32, then cast)."""
    base = np.dtype("float32") if dtype.kind == "V" else dtype
    strat = hnp.arrays(base, shape, elements=hnp.from_dtype(base, allow_nan=True,
                                                            allow_infinity=True))
    return strat.map(lambda a: a.astype(dtype)) if base is not dtype else strat


@st.composite
def arrays(draw: st.DrawFn, dtypes: list[np.dtype] = NUMERIC) -> np.ndarray:
    """One array of any numeric dtype and shape (0-d and 0-size included), NaN/Inf included."""
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(SHAPES)
    if dtype.kind in "fV":
        return draw(_plain_float_array(dtype, shape))
    return draw(hnp.arrays(dtype, shape))


@st.composite
def float_arrays(draw: st.DrawFn, min_size: int = 1) -> np.ndarray:
    dtype = draw(st.sampled_from(FLOATS + BFLOAT16))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=min_size, max_side=5))
    base = np.dtype("float32") if dtype.kind == "V" else dtype
    finite = hnp.from_dtype(base, allow_nan=False, allow_infinity=False, min_value=-1e4,
                            max_value=1e4)
    return draw(hnp.arrays(base, shape, elements=finite)).astype(dtype)


def tolerances() -> st.SearchStrategy[Tolerance]:
    small = st.floats(0, 1, allow_nan=False) | st.sampled_from([0.0, 1e-12, 1e-6, 1e-3])
    return st.builds(Tolerance, rtol=small, atol=small)


# ---- comparison -------------------------------------------------------------------------------


@settings(max_examples=300, **FUZZ)
@given(a=arrays(), tol=tolerances())
def test_an_array_always_matches_itself_300_examples(a, tol):
    """300 examples: any array, any tolerance (exact included) matches a copy of itself."""
    result = compare_array(a, a.copy(), tol)
    assert result.ok, (result.problem, result.mismatched, result.first)


@settings(max_examples=200, **FUZZ)
@given(a=float_arrays(), data=st.data(), tol=tolerances())
def test_nan_matches_only_nan_at_the_same_place_200_examples(a, data, tol):
    """200 examples: a NaN in only one side fails at that index; NaN on both sides matches."""
    i = data.draw(st.integers(0, a.size - 1))
    idx = np.unravel_index(i, a.shape)
    expected, actual = a.copy(), a.copy()
    expected[idx] = np.nan
    result = compare_array(expected, actual, tol)
    assert not result.ok and result.mismatched == 1
    assert result.nan_differs == [tuple(int(j) for j in idx)]
    actual[idx] = np.nan
    assert compare_array(expected, actual, tol).ok


@settings(max_examples=200, **FUZZ)
@given(a=float_arrays(), data=st.data(), tol=tolerances(), sign=st.sampled_from([1, -1]))
def test_infinity_matches_only_the_same_infinity_200_examples(a, data, tol, sign):
    """200 examples: +Inf vs -Inf, or Inf vs a finite value, fails at that index."""
    idx = np.unravel_index(data.draw(st.integers(0, a.size - 1)), a.shape)
    expected, actual = a.copy(), a.copy()
    expected[idx] = sign * np.inf
    actual[idx] = data.draw(st.sampled_from([-sign * np.inf, 0.0, 1e4]))
    result = compare_array(expected, actual, tol)
    assert not result.ok
    assert tuple(int(j) for j in idx) in result.inf_differs
    actual[idx] = sign * np.inf
    assert compare_array(expected, actual, tol).ok


@settings(max_examples=300, **FUZZ)
@given(a=float_arrays(), noise=st.floats(-1e3, 1e3), tol=tolerances(),
       extra=st.tuples(st.floats(0, 10), st.floats(0, 10)), data=st.data())
def test_tolerance_is_monotone_300_examples(a, noise, tol, extra, data):
    """300 examples: loosening rtol or atol never adds a mismatch (counts never grow)."""
    b = a.astype(np.float64) + noise * data.draw(
        hnp.arrays(np.float64, a.shape, elements=st.floats(-1, 1)))
    b = b.astype(a.dtype)
    tight = compare_array(a, b, tol)
    loose = compare_array(a, b, Tolerance(tol.rtol + extra[0], tol.atol + extra[1]))
    assert loose.mismatched <= tight.mismatched
    if tight.ok:
        assert loose.ok


@settings(max_examples=300, **FUZZ)
@given(a=arrays(), b=arrays(), tol=tolerances())
def test_a_dtype_or_shape_difference_always_fails_300_examples(a, b, tol):
    """300 examples: two arrays of different dtype or shape never match, whatever values."""
    assume(a.dtype != b.dtype or a.shape != b.shape)
    result = compare_array(a, b, tol)
    assert not result.ok and result.problem
    assert ("dtype differs" in result.problem) or ("shape differs" in result.problem)


ANY_DTYPES = NUMERIC + [np.dtype("S4"), np.dtype("U3"), np.dtype(object)]


@st.composite
def any_array(draw: st.DrawFn) -> np.ndarray:
    """Numeric arrays, and what a model can also return: bytes, str, object (tf.string)."""
    dtype = draw(st.sampled_from(ANY_DTYPES))
    if dtype.kind == "O":
        items = draw(st.lists(st.binary(max_size=4), min_size=0, max_size=6))
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out
    if dtype.kind in "SU":
        return draw(hnp.arrays(dtype, SHAPES))
    return draw(arrays([dtype]))


@settings(max_examples=400, **FUZZ)
@given(expected=st.lists(any_array(), max_size=3), actual=st.lists(any_array(), max_size=3),
       exact=st.booleans(), rtol=st.none() | st.floats(0, 1), atol=st.none() | st.floats(0, 1))
def test_comparing_and_reporting_never_raise_400_examples(expected, actual, exact, rtol, atol):
    """400 examples: any two output lists (any dtypes, shapes, counts, NaN/Inf, bytes/str/object
    outputs) give a result per output and a report text, never an exception or a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ComplexWarning or overflow would be a bug too
        results = compare_outputs(expected, actual, rtol=rtol, atol=atol, exact=exact)
        text = mismatch_report("[fuzz] outputs differ:", results)
    assert len(results) == max(len(expected), len(actual))
    assert all(isinstance(r.ok, bool) for r in results)
    assert bool(text) == (not all(r.ok for r in results))
    if len(expected) == len(actual):
        for e, a, r in zip(expected, actual, results, strict=True):
            if e.dtype == a.dtype and e.shape == a.shape and e.dtype.kind in "biuSU":
                assert r.ok == bool(np.array_equal(e, a))  # exact kinds: equality, nothing else
            if r.ok:
                assert e.shape == a.shape
            if not r.ok and r.problem is None:
                assert r.mismatched > 0 and (math.isnan(r.max_abs) or r.max_abs >= 0)


# ---- goldens: round trip and mutations -----------------------------------------------------


def _same(want: np.ndarray, got: np.ndarray) -> bool:
    """Bit-identical: same dtype, shape and bytes (NaN payloads included)."""
    return (want.dtype == got.dtype and want.shape == got.shape
            and np.ascontiguousarray(want).tobytes() == np.ascontiguousarray(got).tobytes())


@settings(max_examples=150, **FUZZ)
@given(outputs=st.lists(arrays(), min_size=1, max_size=4))
def test_golden_write_read_round_trip_150_examples(outputs, tmp_path_factory):
    """150 examples: 1-4 outputs of random dtypes (float16/32/64, bfloat16, complex, ints,
    bool) and shapes (0-d and 0-size included) read back bit-identical, dtype and shape."""
    directory = tmp_path_factory.mktemp("rt")
    names = [f"output_{i}" for i in range(len(outputs))]
    sidecar = directory / "t.golden.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in the sidecar's statistics, say
        gf.write_golden(sidecar, outputs, names=names, test="t.py::t", inputs_crc=None)
        back = gf.read_golden(sidecar)
    assert back.names == names
    assert all(_same(w, g) for w, g in zip(outputs, back.arrays, strict=True))
    assert sorted(p.name for p in directory.iterdir()) == sorted([sidecar.name,
                                                                  back.arrays_path.name])


@pytest.fixture(scope="module")
def written_golden(tmp_path_factory) -> tuple[Path, list[np.ndarray], bytes, bytes]:
    directory = tmp_path_factory.mktemp("golden")
    arrays_ = [np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
               np.array([np.nan, np.inf, -np.inf, 0.5]), np.arange(5, dtype=np.int16),
               np.array(True)]
    sidecar = directory / "t.golden.json"
    written = gf.write_golden(sidecar, arrays_, names=["a", "b", "c", "d"], test="t",
                              inputs_crc=None)
    return sidecar, arrays_, sidecar.read_bytes(), written.arrays_path.read_bytes()


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """1-8 random edits: flip a bit, set a byte, insert or delete a run, truncate."""
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        i = draw(st.integers(0, max(len(b) - 1, 0)))
        if op == "flip" and b:
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and b:
            b[i] = draw(st.integers(0, 255))
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del b[i:i + draw(st.integers(1, 64))]
        elif op == "truncate":
            del b[i:]
    return bytes(b)


def _read_is_refused_or_exact(sidecar: Path, want: list[np.ndarray]) -> str:
    try:
        back = gf.read_golden(sidecar)
    except gf.GoldenError as exc:
        assert str(sidecar.parent) in str(exc), str(exc)  # the message names the file
        return "refused"
    assert len(back.arrays) == len(want)
    assert all(_same(w, g) for w, g in zip(want, back.arrays, strict=True)), back.arrays
    return "exact"


@settings(max_examples=400, **FUZZ)
@given(data=st.data(), which=st.sampled_from(["arrays", "sidecar", "both"]))
def test_mutated_golden_bytes_are_refused_or_read_exactly_400_examples(written_golden, data,
                                                                       which):
    """400 examples: random edits of the .npz bytes, the sidecar bytes or both: read_golden
    raises GoldenError naming the file, or returns exactly the written arrays."""
    sidecar, want, good_sidecar, good_arrays = written_golden
    arrays_path = sidecar.parent / json.loads(good_sidecar)["arrays"]
    new_arrays = data.draw(mutated(good_arrays)) if which != "sidecar" else good_arrays
    new_sidecar = data.draw(mutated(good_sidecar)) if which != "arrays" else good_sidecar
    try:
        arrays_path.write_bytes(new_arrays)
        sidecar.write_bytes(new_sidecar)
        _read_is_refused_or_exact(sidecar, want)
    finally:
        arrays_path.write_bytes(good_arrays)
        sidecar.write_bytes(good_sidecar)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**40) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, **FUZZ)
@given(data=st.data())
def test_random_sidecar_documents_are_refused_or_read_exactly_300_examples(written_golden,
                                                                            data):
    """300 examples: the sidecar's JSON with fields replaced by random JSON values (outputs,
    arrays name, shapes, dtypes, CRCs): GoldenError naming the file, or the exact arrays."""
    sidecar, want, good_sidecar, _ = written_golden
    doc = json.loads(good_sidecar)
    path = data.draw(st.sampled_from([
        ("outputs",), ("arrays",), ("outputs", "a"), ("outputs", "b", "shape"),
        ("outputs", "b", "dtype"), ("outputs", "c", "crc32"), ("outputs", "d", "shape"),
        ("outputs", "a", "shape", 0), ()]))
    value = data.draw(JSON | st.sampled_from(["../t.npz", "/etc/passwd", "object", "|O",
                                              "float32", [2**40], [-1], [3, 4, 0]]))
    if not path:
        doc = value
    else:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    try:
        sidecar.write_text(json.dumps(doc))
        _read_is_refused_or_exact(sidecar, want)
    finally:
        sidecar.write_bytes(good_sidecar)


# ---- frozen graphs: mutated .pb bytes, in a subprocess -------------------------------------


def run_fuzz_child(args: list[str], tmp_path: Path, timeout: float = 240) -> dict[str, int]:
    """Run a fuzz child script (tests/fuzz_*_child.py) in a fresh interpreter, so that a
    TensorFlow abort cannot kill pytest; the counts it printed. Fails on a hang or a crash."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(
        [str(HERE), os.environ.get("PYTHONPATH", "")])}
    last = tmp_path / "last-example.bin"
    try:
        proc = subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:  # a hang
        pytest.fail(f"the fuzz child {args[0]} hung ({timeout:g} s); last example in {last}: "
                    f"{exc}")
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, (f"child exited with {proc.returncode} (negative: killed by "
                                  f"that signal, a crash); last example in {last}\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


PB_EXAMPLES = 250


@pytest.mark.heavy
def test_mutated_frozen_graph_bytes_never_crash_or_hang_250_examples(tmp_path):
    """250 examples, in a fresh interpreter (a TensorFlow abort there cannot kill pytest):
    mutated bytes of a real frozen graph restored and run through the `pb` format give a
    failure naming [pb], the file and a cause, or outputs — never a crash, a hang or another
    exception. The child is tests/fuzz_pb_child.py; it prints what it saw."""
    summary = run_fuzz_child(["fuzz_pb_child.py", str(tmp_path), str(PB_EXAMPLES)], tmp_path)
    assert summary["examples"] >= PB_EXAMPLES, summary
    assert summary["refused"] > 0 and summary["other"] == 0, summary
    print("pb fuzz:", summary)


SAVED_EXAMPLES = 25


@pytest.mark.parametrize("fmt", ["savedmodel", "ckpt"])
def test_mutated_saved_model_and_meta_protos_never_crash_or_hang_25_examples(fmt, tmp_path):
    """25 examples per format, in a fresh interpreter: field-level edits of a real
    ``saved_model.pb`` / ``.meta`` (op types incl. WriteFile/ReadFile/PyFunc, inputs, attrs,
    signatures, saver_def names, init ops, asset names) give a failure naming the format and
    the file, or the original outputs; no mutant writes a file (tests/fuzz_saved_child.py)."""
    summary = run_fuzz_child(["fuzz_saved_child.py", fmt, str(tmp_path), str(SAVED_EXAMPLES)],
                             tmp_path, timeout=540)
    assert summary["examples"] >= SAVED_EXAMPLES, summary
    assert summary["refused (screen)"] > 0 and summary["other"] == 0, summary
    print(f"{fmt} proto fuzz:", summary)


@pytest.mark.parametrize("method", [99, 8])  # 99: unknown to zipfile; 8: deflate on raw bytes
def test_arrays_member_with_a_damaged_compression_method_is_refused(written_golden, method):
    """Found by the fuzz above: a flipped compression-method field made zipfile raise
    NotImplementedError (or zlib.error), which escaped read_golden as a crash."""
    sidecar, _, good_sidecar, good_arrays = written_golden
    arrays_path = sidecar.parent / json.loads(good_sidecar)["arrays"]
    damaged = bytearray(good_arrays)
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local, central
        start = damaged.find(signature)
        while start != -1:
            damaged[start + offset:start + offset + 2] = method.to_bytes(2, "little")
            start = damaged.find(signature, start + 4)
    try:
        arrays_path.write_bytes(bytes(damaged))
        assert _read_is_refused_or_exact(sidecar, []) == "refused"
    finally:
        arrays_path.write_bytes(good_arrays)
