"""Comma-separated name lists, as --persist-formats, --persist-loaders and the marker take them."""

from __future__ import annotations

from collections.abc import Iterable

#: The word that selects every known name.
ALL = "all"


def split_names(spec: str | Iterable[str] | None) -> list[str]:
    """'a, b,,c' or ['a', ' b'] -> ['a', 'b', 'c'] (stripped, empty items dropped, in order)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec or [])
    return [s.strip() for s in items if s and s.strip()]
