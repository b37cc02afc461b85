"""Readable differences between two interface documents (pure Python: no TensorFlow, no numpy).

An interface document (see `pytest_modelpersist.interface`) is JSON: ``signatures`` (name ->
``inputs``/``outputs``, key -> spec ``{"dtype", "shape", "tensor"}``), the sorted sets
``ops``/``layers``/``collections``/``tags`` and ``variables`` (name -> spec). `diff` turns two
of them into one line per change, the lines a failing test prints::

    serving_default: input 'x' renamed to 'inputs'
    serving_default: output 'probs' dtype float32 -> float16
    ops added: DisableCopyOnRead
    signature 'serving_default' missing
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: The sorted name sets of a document, with the word used in their diff lines.
SETS = (("ops", "ops"), ("layers", "layers"), ("collections", "collections"), ("tags", "tags"))
#: How many names one "added"/"removed" line shows before "... and N more".
MAX_NAMES = 12


def shape_text(shape: Sequence[int | None] | None) -> str:
    """``[None, 4]`` for a shape, ``<unknown rank>`` for None."""
    if shape is None:
        return "<unknown rank>"
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


def spec_text(spec: Mapping[str, Any]) -> str:
    """``float32 [None, 4]`` (the parts a spec has)."""
    parts = []
    if spec.get("dtype"):
        parts.append(str(spec["dtype"]))
    if "shape" in spec:
        parts.append(shape_text(spec["shape"]))
    return " ".join(parts) or "no dtype or shape recorded"


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES])
    return shown + (f" ... and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


def spec_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``dtype float32 -> float16``, ``shape [None, 4] -> [None, 5]``, ``tensor 'a:0' -> 'b:0'``."""
    changes = []
    if old.get("dtype") != new.get("dtype") and (old.get("dtype") or new.get("dtype")):
        changes.append(f"dtype {old.get('dtype')} -> {new.get('dtype')}")
    if ("shape" in old or "shape" in new) and old.get("shape") != new.get("shape"):
        changes.append(f"shape {shape_text(old.get('shape'))} -> "
                       f"{shape_text(new.get('shape'))}")
    if old.get("tensor") != new.get("tensor") and old.get("tensor") and new.get("tensor"):
        changes.append(f"tensor {old['tensor']!r} -> {new['tensor']!r}")
    return changes


def _renames(gone: list[str], came: list[str], old: Mapping[str, Any],
             new: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Pairs (old key, new key) read as a rename rather than one removed and one added.

    One key gone and one come is a rename; among several, a gone key whose dtype and shape
    match exactly one new key's (and no other gone key's) is.
    """
    if len(gone) == 1 and len(came) == 1:
        return [(gone[0], came[0])]

    def sig(spec: Mapping[str, Any]) -> tuple[Any, Any]:
        return spec.get("dtype"), repr(spec.get("shape"))

    pairs = []
    for g in gone:
        same = [c for c in came if sig(new[c]) == sig(old[g])]
        rivals = [o for o in gone if sig(old[o]) == sig(old[g])]
        if len(same) == 1 and len(rivals) == 1:
            pairs.append((g, same[0]))
    return pairs


def mapping_diff(old: Mapping[str, Any], new: Mapping[str, Any], what: str,
                 prefix: str = "") -> list[str]:
    """Lines for two key -> spec mappings (a signature's inputs, a checkpoint's variables)."""
    lines = []
    gone = [k for k in old if k not in new]
    came = [k for k in new if k not in old]
    for g, c in _renames(gone, came, old, new):
        changes = [ch for ch in spec_changes(old[g], new[c]) if not ch.startswith("tensor")]
        extra = f" ({', '.join(changes)})" if changes else ""
        lines.append(f"{prefix}{what} {g!r} renamed to {c!r}{extra}")
        gone.remove(g)
        came.remove(c)
    for g in gone:
        lines.append(f"{prefix}{what} {g!r} missing (was {spec_text(old[g])})")
    for c in came:
        lines.append(f"{prefix}{what} {c!r} added ({spec_text(new[c])})")
    for k in old:
        if k in new:
            lines.extend(f"{prefix}{what} {k!r} {ch}" for ch in spec_changes(old[k], new[k]))
    return lines


def signature_diff(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Lines for one signature present on both sides."""
    prefix = f"{name}: "
    lines = mapping_diff(old.get("inputs", {}), new.get("inputs", {}), "input", prefix)
    lines += mapping_diff(old.get("outputs", {}), new.get("outputs", {}), "output", prefix)
    if old.get("method") != new.get("method") and old.get("method") and new.get("method"):
        lines.append(f"{prefix}method {old['method']} -> {new['method']}")
    return lines


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Every difference from the interface `old` (the golden's) to `new`, one line each.

    Empty when the interfaces are the same. Parts a document does not record (a Keras file has
    no ops) are not compared.
    """
    lines = []
    old_sigs, new_sigs = old.get("signatures", {}), new.get("signatures", {})
    for name in old_sigs:
        if name not in new_sigs:
            have = ", ".join(repr(n) for n in new_sigs) or "none"
            lines.append(f"signature {name!r} missing (the artifact has: {have})")
        else:
            lines.extend(signature_diff(name, old_sigs[name], new_sigs[name]))
    lines.extend(f"signature {name!r} added" for name in new_sigs if name not in old_sigs)
    for key, word in SETS:
        if key not in old or key not in new:
            continue
        removed = sorted(set(old[key]) - set(new[key]))
        added = sorted(set(new[key]) - set(old[key]))
        if added:
            lines.append(f"{word} added: {_names(added)}")
        if removed:
            lines.append(f"{word} removed: {_names(removed)}")
    if "variables" in old and "variables" in new:
        lines.extend(mapping_diff(old["variables"], new["variables"], "variable"))
    return lines
