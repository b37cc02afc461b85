"""compare.py against numpy: the blocked path (outputs over one 65,536-element block)."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_modelpersist.compare import BLOCK, Tolerance, compare_array, compare_outputs


def _noisy(rng: np.random.Generator, n: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Expected and actual of n elements: mostly equal, some within and some beyond tolerance,
    NaN and infinities in both, on both sides of block boundaries."""
    exp = (rng.standard_normal(n) * 10).astype(dtype)
    act = exp.copy()
    for scale in (1e-7, 1e-5, 1e-3, 1.0):  # some inside the tolerance, some outside
        idx = rng.choice(n, size=n // 500, replace=False)
        act[idx] = (act[idx].astype(np.float64) * (1 + scale)).astype(dtype)
    for where, value in ((exp, np.nan), (act, np.nan), (exp, np.inf), (act, -np.inf)):
        where[rng.choice(n, size=7, replace=False)] = value
    both = rng.choice(n, size=5, replace=False)
    exp[both] = act[both] = np.nan  # NaN at the same place matches
    edges = sorted({BLOCK - 1, BLOCK, min(2 * BLOCK - 1, n - 1), n - 1})
    act[edges] = exp[edges] + 1  # mismatches exactly at block edges
    return exp, act


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("n", [BLOCK + 1, 3 * BLOCK + 123])
@pytest.mark.parametrize("seed", [0, 1])
def test_blocked_comparison_matches_numpy_isclose(dtype, n, seed):
    rng = np.random.default_rng(seed)
    exp, act = _noisy(rng, n, dtype)
    tol = Tolerance(rtol=1e-4, atol=1e-5)
    result = compare_array(exp, act, tol)
    wide = np.float32 if dtype == "float16" else dtype  # half types compare in float32
    want = np.flatnonzero(~np.isclose(act.astype(wide), exp.astype(wide), rtol=tol.rtol,
                                      atol=tol.atol, equal_nan=True))
    assert result.mismatched == want.size > 0
    assert [i for (i,), _, _ in result.first] == list(want[:5])


def test_blocked_comparison_all_equal_and_exact_integers():
    exp = np.arange(5 * BLOCK, dtype=np.int64).reshape(5, BLOCK)
    assert compare_outputs([exp], [exp.copy()])[0].ok
    act = exp.copy()
    act[4, BLOCK - 1] += 1
    result = compare_outputs([exp], [act])[0]
    assert result.mismatched == 1 and result.worst[0] == (4, BLOCK - 1)
    assert result.max_abs == 1.0


def test_blocked_comparison_non_contiguous_views():
    rng = np.random.default_rng(3)
    exp = rng.standard_normal((700, 300)).astype(np.float32)
    act = exp.copy()
    act[::7, 5] += 1.0
    result = compare_array(exp.T, act.T, Tolerance(1e-5, 1e-6))  # transposed: not contiguous
    want = np.flatnonzero(~np.isclose(act.T, exp.T, rtol=1e-5, atol=1e-6, equal_nan=True))
    assert result.mismatched == want.size == 100
