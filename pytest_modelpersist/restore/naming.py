"""Closest-name suggestions and short name listings for restore messages (no numpy, no TF)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Up to `n` names of `candidates` close to `name` (by spelling, then by last part)."""
    pool = sorted(set(candidates))
    found = difflib.get_close_matches(name, pool, n=n, cutoff=0.5)
    if not found:  # a renamed scope scores low on the whole name: compare the last parts too
        tail = name.rstrip("/").rsplit("/", 1)[-1]
        found = [c for c in pool if c.rstrip("/").rsplit("/", 1)[-1] == tail][:n]
    return found


def listing(names: Sequence[str], n: int = 6) -> str:
    """The first `n` names joined with commas, with the total when there are more."""
    shown = ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")
    return shown or "(none)"


def suggest(name: str, pool: Iterable[str], fallback: Iterable[str]) -> str:
    """The names closest to `name` in `pool`, or the first of `fallback` when none is close."""
    return listing(closest(name, pool) or sorted(fallback))


def prefixes(names: Iterable[str]) -> set[str]:
    """Every scope prefix (``a/``, ``a/b/``) of `names`."""
    out: set[str] = set()
    for name in names:
        parts = name.split("/")
        out.update("/".join(parts[:i]) + "/" for i in range(1, len(parts)))
    return out
