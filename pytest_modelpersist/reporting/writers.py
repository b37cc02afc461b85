"""Report files by extension: the matrix shared by the HTML and Markdown writers, the JSON rows.

Each writer is a function of the rows alone (no pytest), so it can be tested and reused.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._atomic import atomic_write
from ..loaders import LOADERS

if TYPE_CHECKING:
    from .collect import Row

SCHEMA = Path(__file__).with_name("report.schema.json")
SCHEMA_VERSION = 1
OUTCOMES = ("pass", "fail", "error", "skip", "xfail", "xpass")


@dataclass
class Matrix:
    """Tests (rows) x format/loader columns; a cell is the Row of that item, if any."""

    tests: list[str]
    columns: list[tuple[str, str]]
    cells: dict[tuple[str, tuple[str, str]], Row]

    @classmethod
    def of(cls, rows: Sequence[Row]) -> Matrix:
        tests = list(dict.fromkeys(r.test for r in rows))
        formats = merged_order([[r.format for r in rows if r.test == t] for t in tests])
        loaders = list(dict.fromkeys([*LOADERS, *(r.loader for r in rows)]))
        columns = sorted(dict.fromkeys((r.format, r.loader) for r in rows),
                         key=lambda c: (formats.index(c[0]), loaders.index(c[1])))
        return cls(tests, columns, {(r.test, (r.format, r.loader)): r for r in rows})

    def counts(self) -> dict[str, int]:
        found = {o: 0 for o in OUTCOMES}
        for row in self.cells.values():
            found[row.outcome] = found.get(row.outcome, 0) + 1
        return {o: n for o, n in found.items() if n}


def merged_order(sequences: Sequence[Sequence[str]]) -> list[str]:
    """One order agreeing with each sequence's (a test lists its formats in registry order).

    Kahn's algorithm over "a comes before b" pairs; ties (and cycles) go by first appearance.
    """
    names = list(dict.fromkeys(n for seq in sequences for n in seq))
    after: dict[str, set[str]] = {n: set() for n in names}
    for seq in sequences:
        unique = list(dict.fromkeys(seq))
        for a, b in zip(unique, unique[1:], strict=False):
            if a != b:
                after[b].add(a)
    order: list[str] = []
    while len(order) < len(names):
        ready = [n for n in names if n not in order and after[n] <= set(order)]
        order.append(ready[0] if ready else next(n for n in names if n not in order))
    return order


def versions() -> dict[str, str]:
    """Library versions of this run, read from installed metadata (nothing is imported)."""
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("pytest-modelpersist", "tensorflow", "tensorflow-cpu", "keras", "numpy",
                 "h5py", "pytest"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


def document(rows: Sequence[Row]) -> dict[str, Any]:
    """The JSON report: schema version, versions, outcome counts, rows."""
    return {"schema_version": SCHEMA_VERSION, "versions": versions(),
            "counts": Matrix.of(rows).counts(), "rows": [r.to_json() for r in rows]}


def write_report(path: Path, rows: Sequence[Row]) -> None:
    """Write the report `path` asks for (by extension), atomically; parents are created."""
    from .html import html_report
    from .markdown import markdown_report

    suffix = path.suffix.lower()
    if suffix == ".json":
        text = json.dumps(document(rows), indent=1, sort_keys=True) + "\n"
    elif suffix == ".md":
        text = markdown_report(Matrix.of(rows), versions())
    else:
        text = html_report(Matrix.of(rows), versions())
    # A viewer (a CI step reading persist.md) never reads half a report.
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def seconds(x: float | None) -> str:
    """0.0123 -> '12.3 ms'; None -> ''."""
    if x is None:
        return ""
    return f"{x * 1000:.3g} ms" if x < 1 else f"{x:.3g} s"


def size(n: int | None) -> str:
    """1536 -> '1.5 KiB'; None -> ''."""
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def difference(o: dict[str, Any]) -> str:
    """One output's differences vs its tolerance, one line."""
    if o.get("problem"):
        return f"{o['name']}: {o['problem']}"
    fmt = lambda x: "" if x is None else f"{x:.3g}"  # noqa: E731
    verdict = "ok" if o["ok"] else f"{o['mismatched']} of {o['total']} elements off"
    return (f"{o['name']}: max abs {fmt(o['max_abs'])} (atol {fmt(o['atol'])}), "
            f"max rel {fmt(o['max_rel'])} (rtol {fmt(o['rtol'])}): {verdict}")
