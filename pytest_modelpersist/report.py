"""Comparison results -> the failure text a user reads, and the terminal summary table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compare import ArrayComparison


def _value(v: Any) -> str:
    import numpy as np  # the summary imports this module at start-up; numpy only when needed

    v = np.asarray(v)
    return str(v[()]) if v.ndim == 0 else np.array2string(v, precision=9)


def describe_mismatch(c: ArrayComparison) -> str:
    """One output's mismatch, several lines: what differs, how much, where, worst element."""
    head = f"{c.name}: expected {c.expected_dtype}{list(c.expected_shape)}"
    if c.problem:
        return f"{head}; {c.problem}"
    lines = [
        f"{head}, tolerance {c.tolerance}",
        f"  mismatched elements: {c.mismatched} of {c.total} ({c.percent:.3g}%)",
        f"  max abs difference: {c.max_abs:.6g}   max rel difference: {c.max_rel:.6g}",
    ]
    if c.worst is not None:
        idx, exp, act = c.worst
        lines.append(f"  worst element at {idx}: expected {_value(exp)}, got {_value(act)}")
    if c.nan_differs:
        lines.append(f"  NaN in only one side at: {', '.join(map(str, c.nan_differs))}")
    if c.inf_differs:
        lines.append(f"  Inf differs (sign or presence) at: {', '.join(map(str, c.inf_differs))}")
    if c.first:
        shown = "; ".join(f"{i}: {_value(e)} != {_value(a)}" for i, e, a in c.first)
        lines.append(f"  first mismatches: {shown}")
    return "\n".join(lines)


def mismatch_report(title: str, results: Sequence[ArrayComparison], *,
                    footer: Iterable[str] = ()) -> str:
    """The whole failure text for a comparison, or '' when every output matched."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return ""
    body = "\n".join(describe_mismatch(r) for r in failed)
    tail = "\n".join(line for line in footer if line)
    return f"{title}\n{body}" + (f"\n{tail}" if tail else "")


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> list[str]:
    """A plain fixed-width table, as a list of lines."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*cells[0]), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in cells[1:]]
    return lines


def outcome_table(counts: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Formats x passed/failed/skipped, in the order given; xfailed and xpassed columns when
    any item had that outcome."""
    columns = ["passed", "failed", "skipped"] + [
        extra for extra in ("xfailed", "xpassed") if any(c.get(extra) for c in counts.values())]
    rows = [(fmt, *(c.get(column, 0) for column in columns)) for fmt, c in counts.items()]
    return format_table(rows, ("format", *columns))


def environment_notes(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Lines saying how the golden's recording environment differs from this run's."""
    notes = []
    if recorded.get("device") and recorded.get("device") != current.get("device"):
        notes.append(f"the golden was recorded on another device: {recorded.get('device')} "
                     f"(this run: {current.get('device')}); float32 results differ across "
                     "devices (up to ~3e-4 on a GPU with TF32): loosen rtol/atol for this test "
                     "or record device-specific goldens")
    if recorded.get("tf32") and str(recorded.get("device", "")).startswith("GPU"):
        notes.append("the golden was recorded with TF32 enabled (float32 matmuls at reduced "
                     "precision); disable it with "
                     "tf.config.experimental.enable_tensor_float_32_execution(False) "
                     "before recording for tighter goldens")
    changed = [f"{k} {recorded.get(k)} -> {current.get(k)}"
               for k in ("tensorflow", "keras", "numpy")
               if recorded.get(k) and current.get(k) and recorded.get(k) != current.get(k)]
    if changed:
        notes.append("library versions changed since recording: " + ", ".join(changed))
    return notes


def cache_line(saves: Mapping[str, int], hits: Mapping[str, int]) -> str:
    """The artifact-cache line of the terminal summary."""
    per_format = ", ".join(f"{f} {saves[f]}+{hits.get(f, 0)}" for f in sorted(saves))
    return (f"artifacts: {sum(saves.values())} saved, {sum(hits.values())} reused from the "
            f"session cache ({per_format})")


def golden_lines(events: Mapping[str, Iterable[str]], unused: Sequence[str],
                 unreadable: Mapping[str, str], removed: Sequence[str]) -> list[str]:
    """The goldens part of the terminal summary: counts, then every file concerned."""
    recorded, updated = sorted(events.get("recorded", ())), sorted(events.get("updated", ()))
    lines = [f"goldens: {len(recorded)} recorded, {len(updated)} updated, {len(unused)} unused"
             + (f", {len(unreadable)} unreadable" if unreadable else "")
             + (f", {len(removed)} files removed" if removed else "")]
    lines += [f"  {label}: {path}" for label, paths in (("recorded", recorded),
                                                        ("updated", updated)) for path in paths]
    if unused and not removed:
        lines.append("unused goldens (their tests no longer exist; remove them with "
                     "--remove-unused-goldens):")
        lines += [f"  {path}" for path in unused]
    if unreadable:
        lines.append("unreadable goldens (never removed; fix them, or re-record them with "
                     "--update-golden):")
        lines += [f"  {why}" for _, why in sorted(unreadable.items())]
    return lines
