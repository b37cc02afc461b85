"""Expected failures per format: ``@pytest.mark.persist(xfail={"h5": "keras-team/keras#123"})``.

A known upstream bug should not force a user to drop a format. Each key names the items it
expects to fail: a format (``"h5"``: every loader of it) or one item (``"savedmodel-capi"``,
``"ckpt-inprocess"`` for the in-process item alone); the value is the reason (an issue link).
The items get ``pytest.mark.xfail(strict=True, reason=...)``: an unexpected pass fails the
test, so a fixed bug is noticed and its entry removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

INPROCESS = "inprocess"


def is_xfail_map(value: Any) -> bool:
    """A dict of non-empty str keys to non-empty str reasons (the marker keyword's type)."""
    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(k, str) and k and isinstance(v, str) and v.strip() for k, v in value.items())


def unknown_keys(value: Mapping[str, str], formats: Iterable[str],
                 loaders: Iterable[str]) -> list[str]:
    """Keys that name no format and no format-loader item."""
    formats, loaders = set(formats), set(loaders)
    return [k for k in value if k not in formats and not any(
        k == f"{f}-{loader}" for f in formats for loader in loaders)]


def reason_for(value: Mapping[str, str], fmt: str, loader: str) -> str | None:
    """The reason an item (format, loader) is expected to fail, or None.

    The item's own key (``savedmodel-capi``, ``ckpt-inprocess``) wins over its format's.
    """
    return value.get(f"{fmt}-{loader}") or value.get(fmt)


def xfail_marks(value: Mapping[str, str] | None, fmt: str, loader: str) -> list[Any]:
    """A strict xfail mark for the item (format, loader) when `value` expects it to fail."""
    reason = reason_for(value, fmt, loader) if value else None
    return [pytest.mark.xfail(strict=True, reason=f"[{fmt}] {reason}")] if reason else []
