"""The interface golden: an artifact's interface recorded in its test's golden sidecar.

The sidecar of a test (shared by its format items: the outputs do not depend on the format)
holds one interface per format under ``"interfaces"``::

    "interfaces": {"savedmodel": {"signatures": {...}, "tags": [...], "ops": [...]},
                   "keras": {...}}

Policy, per format item:

* no sidecar (``golden=False``, or the outputs golden is missing): nothing to compare;
* a sidecar without this format's interface (recorded before interfaces existed, or a format
  newly selected): passes; ``--update-golden`` records it;
* a recorded interface that differs: fails with one line per change
  (``serving_default: input 'x' renamed to 'inputs'``); ``--update-golden`` records the new one.

Entries are updated under the golden's lock (format items of one test may run on different
xdist workers at once) and written atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from . import interface

KEY = "interfaces"
Lock = Callable[[Path], AbstractContextManager[Any]]


def _read(sidecar: Path) -> dict[str, Any] | None:
    """The sidecar's JSON, or None when absent or unreadable (the outputs golden reports that)."""
    from .golden import GoldenError, read_sidecar

    if not sidecar.exists():
        return None
    try:  # bounded, regular files only (golden_paths.read_sidecar)
        doc = read_sidecar(sidecar)
    except GoldenError:
        return None
    return doc if isinstance(doc, dict) else None


def _store(sidecar: Path, fmt: str, current: Mapping[str, Any], lock: Lock) -> bool:
    """Write `current` as `fmt`'s interface into the sidecar, keeping everything else.
    Returns False when the sidecar disappeared or became unreadable meanwhile."""
    from ._atomic import atomic_write
    from .golden import dumps_readable

    with lock(sidecar):
        doc = _read(sidecar)  # again, under the lock: another item may have written meanwhile
        if doc is None:
            return False
        found = doc.get(KEY)
        interfaces: dict[str, Any] = found if isinstance(found, dict) else {}
        doc[KEY] = dict(sorted({**interfaces, fmt: dict(current)}.items()))
        text = dumps_readable(doc)
        atomic_write(sidecar, lambda fh: fh.write(text.encode("utf-8")))
    return True


def check_interface(sidecar: Path, fmt: str, current: Mapping[str, Any] | None, *,
                    update: bool, update_command: str, lock: Lock,
                    label: str = "") -> str | None:
    """Compare `current` (format `fmt`'s interface) with the one recorded in `sidecar`.

    Returns ``"recorded"``/``"updated"`` when it wrote the sidecar (with `update`), None when
    nothing changed; fails the test with the readable diff when the interface changed and
    `update` is off.
    """
    __tracebackhide__ = True
    if current is None:
        return None
    doc = _read(sidecar)
    if doc is None:
        return None
    recorded = doc.get(KEY, {}).get(fmt) if isinstance(doc.get(KEY), dict) else None
    if recorded is None:
        return "recorded" if update and _store(sidecar, fmt, current, lock) else None
    lines = interface.diff(recorded, current)
    if not lines:
        return None
    if update:
        return "updated" if _store(sidecar, fmt, current, lock) else None
    prefix = f"[{label or fmt}] "
    pytest.fail(
        f"{prefix}the {fmt} artifact's interface differs from the one recorded in the golden "
        f"{sidecar} (what serving code, the C API and other clients rely on):\n"
        + "\n".join(f"  {line}" for line in lines)
        + f"\nto accept the new interface: {update_command}",
        pytrace=False,
    )


def check_artifact(target: Any, sidecar: Path, artifact: Any, *, label: str = "") -> None:
    """Check (or record) the interface of a saved `artifact` in the golden `sidecar` of the
    test `target` (a GoldenTarget: its `update` flag, `update_command()` and `events`)."""
    __tracebackhide__ = True
    from .golden import golden_lock

    try:
        current = interface.of_artifact(artifact)
    except ValueError as exc:  # the extractors' "cannot read this file as that format"
        pytest.fail(f"[{label or artifact.format}] reading the interface of {artifact.path} "
                    f"failed: {exc}", pytrace=False)
    event = check_interface(sidecar, artifact.format, current, update=target.update,
                            update_command=target.update_command(), lock=golden_lock,
                            label=label)
    if event is not None:
        # "recorded" for a first interface: with the golden an item of this run just recorded
        # it counts once (the summary keeps one entry per event and file).
        target.events.append((event, str(sidecar)))
