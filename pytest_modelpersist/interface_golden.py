"""The interface golden: an artifact's interface recorded in its test's golden sidecar.

The sidecar of a test (shared by its format items: the outputs do not depend on the format)
holds one interface per toolchain and format under ``"interfaces"``::

    "interfaces": {"tf2.21": {"savedmodel": {"signatures": {...}, "tags": [...], "ops": [...]},
                              "keras": {...}},
                   "tf2.15+keras2": {"savedmodel": {...}}}

The toolchain is the TensorFlow minor version that wrote the artifact, ``+keras2`` for a Keras 2
model (`tf_keras`, or TF 2.15's `tf.keras`). It is part of the key because the interface is
TensorFlow's to decide: the same model code saved by TF 2.15 (Keras 2) and TF 2.21 (Keras 3)
gives other signature names, tensor names, variable keys and op sets, and a repo that tests on
both versions needs both contracts.

Policy, per format item:

* no sidecar (``golden=False``, or the outputs golden is missing): nothing to compare;
* no interface of this format under any toolchain (recorded before interfaces existed, or a
  format newly selected): passes; ``--update-golden`` records it;
* an interface of this toolchain that differs: fails with one line per change
  (``serving_default: input 'x' renamed to 'inputs'``); ``--update-golden`` records the new one;
* none of this toolchain but one of another (a TensorFlow upgrade): compared with the nearest
  recorded toolchain, so the upgrade's interface changes are shown once; ``--update-golden``
  records this toolchain's beside it.

Sidecars written before toolchains were keys (``"interfaces": {"savedmodel": ...}``) are read as
recorded with the TensorFlow of their ``recorded_with``. Entries are updated under the golden's
lock (format items of one test may run on different xdist workers at once) and written
atomically.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from . import interface
from .models import KERAS2

KEY = "interfaces"
Lock = Callable[[Path], AbstractContextManager[Any]]
_TOOLCHAIN = re.compile(r"^tf(\d+)\.(\d+)(\+keras2)?$")


def toolchain(tf_version: str, *, keras2: bool) -> str:
    """The key of an interface: ``tf2.21`` for TensorFlow 2.21.x, ``tf2.15+keras2`` for a
    Keras 2 model saved by TensorFlow 2.15.x."""
    major, minor = ([*str(tf_version).split("."), "0", "0"])[:2]
    return f"tf{major}.{minor}" + ("+keras2" if keras2 else "")


def artifact_toolchain(artifact: Any) -> str:
    """The toolchain of an artifact this process saved (TensorFlow is imported by then)."""
    version = getattr(sys.modules.get("tensorflow"), "__version__", "0.0")
    return toolchain(version, keras2=artifact.model_kind == KERAS2)


def by_toolchain(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A sidecar's interfaces as toolchain -> format -> interface.

    A sidecar written before toolchains were keys holds format -> interface: its entries are
    the TensorFlow's of its ``recorded_with`` (Keras 2 models were not supported then).
    """
    found = doc.get(KEY)
    if not isinstance(found, dict):
        return {}
    if found and not all(_TOOLCHAIN.match(str(k)) for k in found):
        recorded = doc.get("recorded_with")
        version = recorded.get("tensorflow") if isinstance(recorded, dict) else None
        return {toolchain(str(version or "0.0"), keras2=False): dict(found)}
    return {str(k): dict(v) for k, v in found.items() if isinstance(v, dict)}


def _nearest(recorded: Mapping[str, Any], here: str) -> str | None:
    """The recorded toolchain closest to `here`: same Keras flavour first, then the nearest
    TensorFlow version, an older one before a newer one at the same distance."""
    want = _TOOLCHAIN.match(here)
    if want is None or not recorded:
        return None
    mine = int(want[1]) * 1000 + int(want[2])

    def distance(key: str) -> tuple[int, int, int]:
        got = _TOOLCHAIN.match(key)
        if got is None:
            return (2, 0, 0)
        theirs = int(got[1]) * 1000 + int(got[2])
        return (int(got[3] != want[3]), abs(theirs - mine), int(theirs > mine))

    return min(recorded, key=distance)


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


def _store(sidecar: Path, key: str, fmt: str, current: Mapping[str, Any], lock: Lock) -> bool:
    """Write `current` as `fmt`'s interface of toolchain `key` into the sidecar, keeping
    everything else. Returns False when the sidecar disappeared or became unreadable meanwhile."""
    from ._atomic import atomic_write
    from .golden import dumps_readable

    with lock(sidecar):
        doc = _read(sidecar)  # again, under the lock: another item may have written meanwhile
        if doc is None:
            return False
        interfaces = by_toolchain(doc)
        interfaces[key] = dict(sorted({**interfaces.get(key, {}), fmt: dict(current)}.items()))
        doc[KEY] = dict(sorted(interfaces.items()))
        text = dumps_readable(doc)
        atomic_write(sidecar, lambda fh: fh.write(text.encode("utf-8")))
    return True


def check_interface(sidecar: Path, fmt: str, current: Mapping[str, Any] | None, *,
                    toolchain: str, update: bool, update_command: str, lock: Lock,
                    label: str = "") -> str | None:
    """Compare `current` (format `fmt`'s interface, written by `toolchain`) with the one
    recorded in `sidecar` for that toolchain, or else for the nearest recorded one.

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
    recorded = {k: v[fmt] for k, v in by_toolchain(doc).items() if isinstance(v.get(fmt), dict)}
    nearest = toolchain if toolchain in recorded else _nearest(recorded, toolchain)
    if nearest is None:
        return "recorded" if update and _store(sidecar, toolchain, fmt, current, lock) else None
    lines = interface.diff(recorded[nearest], current)
    if not lines:
        if nearest == toolchain or not update:
            return None
        return "recorded" if _store(sidecar, toolchain, fmt, current, lock) else None
    if update:
        event = "updated" if nearest == toolchain else "recorded"
        return event if _store(sidecar, toolchain, fmt, current, lock) else None
    where = "" if nearest == toolchain else (
        f" for {nearest} (none yet for {toolchain}, which saved this artifact)")
    prefix = f"[{label or fmt}] "
    pytest.fail(
        f"{prefix}the {fmt} artifact's interface differs from the one recorded in the golden "
        f"{sidecar}{where} (what serving code, the C API and other clients rely on):\n"
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
    event = check_interface(sidecar, artifact.format, current,
                            toolchain=artifact_toolchain(artifact), update=target.update,
                            update_command=target.update_command(), lock=golden_lock,
                            label=label)
    if event is not None:
        # "recorded" for a first interface: with the golden an item of this run just recorded
        # it counts once (the summary keeps one entry per event and file).
        target.events.append((event, str(sidecar)))
