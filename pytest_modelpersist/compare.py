"""Pure numpy: (expected, actual, tolerance) -> result. No pytest, no TensorFlow.

Closeness is numpy's: ``|actual - expected| <= atol + rtol * |expected|``. NaN matches NaN only
at the same place; an infinity matches only the same infinity. A shape or dtype difference is a
failure of its own, whatever the values.

numpy is imported inside the functions: the plugin imports this module (its Tolerance) when
pytest starts, and collecting tests that never compare anything must not pay for numpy
(benchmarks/bench_collection.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float

    @property
    def exact(self) -> bool:
        return self.rtol == 0 and self.atol == 0

    def __str__(self) -> str:
        return "exact" if self.exact else f"rtol={self.rtol:g}, atol={self.atol:g}"


EXACT = Tolerance(0.0, 0.0)

#: Default tolerance per dtype. float32 follows TensorFlow's assertAllCloseAccordingToType
#: (1e-6 absolute) with a 1e-5 relative term; half types use TF's half/bfloat16 values.
#: Integers and bools must be exact.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(rtol=1e-7, atol=1e-9),
    "float32": Tolerance(rtol=1e-5, atol=1e-6),
    "float16": Tolerance(rtol=1e-3, atol=1e-3),
    "bfloat16": Tolerance(rtol=1e-2, atol=1e-2),
    "complex128": Tolerance(rtol=1e-7, atol=1e-9),
    "complex64": Tolerance(rtol=1e-5, atol=1e-6),
}


def dtype_name(dtype: Any) -> str:
    import numpy as np

    return np.dtype(dtype).name


def is_float_like(dtype: Any) -> bool:
    import numpy as np

    name = dtype_name(dtype)
    return np.issubdtype(np.dtype(dtype), np.inexact) or name in DEFAULT_TOLERANCES


def tolerance_for(
    dtype: Any,
    *,
    table: Mapping[str, Tolerance] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    exact: bool = False,
) -> Tolerance:
    """The tolerance for one dtype: exact mode, else explicit rtol/atol over the table's entry."""
    if exact or not is_float_like(dtype):
        return EXACT
    merged = {**DEFAULT_TOLERANCES, **(table or {})}
    base = merged.get(dtype_name(dtype), DEFAULT_TOLERANCES["float32"])
    return Tolerance(base.rtol if rtol is None else float(rtol),
                     base.atol if atol is None else float(atol))


@dataclass
class ArrayComparison:
    """How one actual array compares with its expected array."""

    name: str
    expected_shape: tuple[int, ...]
    actual_shape: tuple[int, ...]
    expected_dtype: str
    actual_dtype: str
    tolerance: Tolerance
    problem: str | None = None  # a shape/dtype difference: no element-wise comparison
    total: int = 0
    mismatched: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst: tuple[tuple[int, ...], Any, Any] | None = None  # (index, expected, actual)
    first: list[tuple[tuple[int, ...], Any, Any]] = field(default_factory=list)
    nan_differs: list[tuple[int, ...]] = field(default_factory=list)
    inf_differs: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None and self.mismatched == 0

    @property
    def percent(self) -> float:
        return 100.0 * self.mismatched / self.total if self.total else 0.0


def _widen(a: np.ndarray) -> np.ndarray:
    """Half-precision and custom float types (bfloat16) compared in float32; others as is.

    Only floats narrower than float32 are widened: float128 keeps its precision, and strings,
    bytes or objects (a tf.string output) cannot be converted to floats at all.
    """
    import numpy as np

    if a.dtype.kind in "fV" and a.dtype.itemsize < 4 and is_float_like(a.dtype):
        return a.astype(np.float32)
    return a


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    import numpy as np

    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


#: Elements compared per block. Blocks keep the temporaries (a few bool/float arrays of one
#: block) in cache and the peak memory flat, whatever the outputs' size: a golden check of an
#: 80 MB output must not cost several more 80 MB arrays.
BLOCK = 1 << 16


def _mismatches(exp: np.ndarray, act: np.ndarray, tolerance: Tolerance,
                float_like: bool) -> np.ndarray:
    """Flat indices where `act` is not close to `exp` (same shape and dtype), ascending.

    A block whose elements are all bit-equal is skipped; so is one whose finite elements are all
    within tolerance (an in-place screen with no temporaries). The others are compared with
    numpy's isclose(equal_nan=True), or exactly: the result is isclose's, element for element.
    """
    import numpy as np

    e_flat, a_flat = exp.reshape(-1), act.reshape(-1)  # views unless non-contiguous
    exact = tolerance.exact or not float_like
    # Python floats: numpy computes with them in the arrays' own precision, as for isclose.
    rtol, atol = float(tolerance.rtol), float(tolerance.atol)
    found: list[np.ndarray] = []
    real = None if exact else _widen(e_flat[:0]).dtype
    if real is not None and real.kind == "f":
        # Work buffers for the real-float screen below, reused by every block.
        n = min(BLOCK, e_flat.size)
        diff, limit = np.empty(n, real), np.empty(n, real)
        within = np.empty(n, bool)
        largest = np.finfo(real).max
    else:
        real = None
    for start in range(0, e_flat.size, BLOCK):
        e_blk, a_blk = e_flat[start:start + BLOCK], a_flat[start:start + BLOCK]
        equal = e_blk == a_blk
        if equal.all():
            continue
        e, a = _widen(e_blk), _widen(a_blk)
        if real is not None:
            # Screen: |a - e| <= atol + rtol*|e| computed in place, as isclose does. The limit
            # is capped at the largest finite value so an infinite expected value never counts
            # as close here; a block that passes has no mismatch, any other gets the exact
            # isclose treatment (infinities, NaN) below.
            k = e.size
            d, t, w = diff[:k], limit[:k], within[:k]
            with np.errstate(invalid="ignore", over="ignore"):
                np.subtract(a, e, out=d)
                np.abs(d, out=d)
                np.abs(e, out=t)
                t *= rtol
                t += atol
                np.minimum(t, largest, out=t)
                np.less_equal(d, t, out=w)
            if w.all():
                continue
        if exact:
            close = (e == a) | (np.isnan(e) & np.isnan(a)) if float_like else equal
        else:
            with np.errstate(invalid="ignore", over="ignore"):
                close = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
        bad = np.flatnonzero(~close)
        if bad.size:
            found.append(bad + start)
    if not found:
        return np.empty(0, dtype=np.intp)
    return np.concatenate(found)


def compare_array(
    expected: Any, actual: Any, tolerance: Tolerance, *, name: str = "output", show: int = 5
) -> ArrayComparison:
    """Compare one array; the result carries the statistics a mismatch report needs."""
    import numpy as np

    exp, act = np.asarray(expected), np.asarray(actual)
    result = ArrayComparison(name, tuple(exp.shape), tuple(act.shape), dtype_name(exp.dtype),
                             dtype_name(act.dtype), tolerance, total=int(exp.size))
    if exp.shape != act.shape:
        result.problem = f"shape differs: expected {exp.shape}, got {act.shape}"
        return result
    if result.expected_dtype != result.actual_dtype:
        result.problem = f"dtype differs: expected {exp.dtype}, got {act.dtype}"
        return result
    float_like = is_float_like(exp.dtype)
    bad = _mismatches(exp, act, tolerance, float_like)
    result.mismatched = int(bad.size)
    if not bad.size:
        return result
    shape = exp.shape
    e_all, a_all = exp.reshape(-1), act.reshape(-1)
    # Only the mismatched elements are widened and inspected.
    e_bad, a_bad = _widen(e_all[bad]), _widen(a_all[bad])
    if float_like:
        nan_diff = np.isnan(e_bad) != np.isnan(a_bad)
        inf_diff = (np.isinf(e_bad) | np.isinf(a_bad)) & ~nan_diff & (e_bad != a_bad)
        result.nan_differs = [_index(i, shape) for i in bad[nan_diff][:show]]
        result.inf_differs = [_index(i, shape) for i in bad[inf_diff][:show]]
        finite = ~(nan_diff | inf_diff) & np.isfinite(e_bad) & np.isfinite(a_bad)
        if finite.any():
            # complex differences keep their imaginary part (|a - e| is the modulus)
            wide = np.complex128 if e_bad.dtype.kind == "c" else np.float64
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                diff = np.abs(a_bad[finite].astype(wide) - e_bad[finite].astype(wide))
                rel = diff / np.abs(e_bad[finite].astype(wide))
            worst = int(np.argmax(diff))
            result.max_abs = float(diff[worst])
            result.max_rel = float(np.nanmax(np.where(np.isfinite(rel), rel, np.inf)))
            flat = int(bad[finite][worst])
            result.worst = (_index(flat, shape), e_all[flat], a_all[flat])
        else:
            result.max_abs = result.max_rel = float("inf")
    elif exp.dtype.kind not in "biu":  # strings, bytes, objects, dates: no arithmetic
        result.max_abs = result.max_rel = float("nan")
        flat = int(bad[0])
        result.worst = (_index(flat, shape), e_all[flat], a_all[flat])
    else:
        e_bad = e_bad.astype(np.float64)
        a_bad = a_bad.astype(np.float64)
        diff = np.abs(a_bad - e_bad)
        worst = int(np.argmax(diff))
        result.max_abs = float(diff[worst])
        with np.errstate(divide="ignore", invalid="ignore"):
            result.max_rel = float(np.max(diff / np.abs(e_bad)))
        flat = int(bad[worst])
        result.worst = (_index(flat, shape), e_all[flat], a_all[flat])
    result.first = [(_index(int(i), shape), e_all[i], a_all[i]) for i in bad[:show]]
    return result


def compare_outputs(
    expected: Sequence[Any],
    actual: Sequence[Any],
    *,
    table: Mapping[str, Tolerance] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    exact: bool = False,
    names: Sequence[str] | None = None,
) -> list[ArrayComparison]:
    """Compare two lists of outputs; a different number of outputs is reported as a problem."""
    import numpy as np

    results = []
    names = list(names or [f"output_{i}" for i in range(max(len(expected), len(actual)))])
    for i, name in enumerate(names):
        if i >= len(expected) or i >= len(actual):
            have = "expected" if i < len(expected) else "actual"
            arr = np.asarray(expected[i] if i < len(expected) else actual[i])
            r = ArrayComparison(name, tuple(arr.shape), tuple(arr.shape), dtype_name(arr.dtype),
                                dtype_name(arr.dtype), EXACT)
            r.problem = (f"only the {have} side has this output "
                         f"({len(expected)} expected outputs, {len(actual)} actual)")
            results.append(r)
            continue
        exp = np.asarray(expected[i])
        tol = tolerance_for(exp.dtype, table=table, rtol=rtol, atol=atol, exact=exact)
        results.append(compare_array(exp, actual[i], tol, name=name))
    return results
