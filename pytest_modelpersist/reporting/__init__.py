"""Per-item figures for ``--persist-report`` and JUnit XML, recorded where they happen.

The persist code calls `record` (and `timed`, `record_comparisons`) with the test item; the
figures go into ``item.user_properties`` as ``persist_<key>`` entries. Those travel with every
TestReport, also from xdist workers to the controller, where the report plugin
(`reporting.collect`) builds one row per item; JUnit XML writes them as ``<property>`` elements.
Nothing here imports TensorFlow; numpy only when a mismatch's histogram is computed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

PREFIX = "persist_"
#: Bulky entries the report plugin reads and then removes from the report (JUnit stays short).
OUTPUTS, DETAILS = "outputs", "details"
BULKY = frozenset({PREFIX + OUTPUTS, PREFIX + DETAILS})
#: Bins of the per-output histogram of differences kept for a mismatch.
BINS = 20


def record(node: Any, key: str, value: Any, *, add: bool = False) -> None:
    """Set ``persist_<key> = value`` on a test item (no-op without an item or a value).

    One entry per key, so JUnit XML gets one property each: a second call replaces the value,
    or with `add` sums it (a time spent in two restores).
    """
    if node is None or value is None:
        return
    name = PREFIX + key
    props = node.user_properties
    for i, (k, old) in enumerate(props):
        if k == name:
            props[i] = (name, old + value if add else value)
            return
    props.append((name, value))


@contextlib.contextmanager
def timed(node: Any, step: str) -> Iterator[None]:
    """Record the block's wall time as ``persist_<step>_seconds`` (summed when repeated)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        record(node, f"{step}_seconds", round(time.perf_counter() - start, 6), add=True)


def record_comparisons(node: Any, expected: Sequence[Any], actual: Sequence[Any],
                       comparisons: Sequence[Any]) -> None:
    """Record each output's max abs/rel difference vs tolerance; a histogram for mismatches."""
    if node is None or not comparisons:
        return
    outputs = []
    for i, c in enumerate(comparisons):
        entry = {"name": c.name, "ok": c.ok, "max_abs": _finite(c.max_abs),
                 "max_rel": _finite(c.max_rel), "rtol": c.tolerance.rtol,
                 "atol": c.tolerance.atol, "mismatched": c.mismatched, "total": c.total,
                 "problem": c.problem}
        if not c.ok and c.problem is None and i < len(expected) and i < len(actual):
            entry["histogram"] = difference_histogram(expected[i], actual[i])
        outputs.append(entry)
    record(node, OUTPUTS, json.dumps(outputs))
    record(node, "max_abs_diff", max(o["max_abs"] or 0.0 for o in outputs))
    record(node, "max_rel_diff", max(o["max_rel"] or 0.0 for o in outputs))


def difference_histogram(expected: Any, actual: Any) -> dict[str, list[float]] | None:
    """Counts and bin edges of |actual - expected| over the finite elements, or None."""
    import numpy as np

    try:
        diff = np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))
    except (TypeError, ValueError):  # strings, objects: no numeric difference
        return None
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return None
    counts, edges = np.histogram(diff, bins=BINS)
    return {"counts": [int(n) for n in counts], "edges": [float(e) for e in edges]}


def record_details(node: Any, exc: BaseException) -> None:
    """Keep what a failure message left out (a Keras object config) for the report."""
    from ..messages import config_dump

    record(node, DETAILS, getattr(exc, "details", None) or config_dump(str(exc)))


def _finite(x: float) -> float | None:
    return float(x) if x == x and abs(x) != float("inf") else None
