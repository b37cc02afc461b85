"""Matching saved entries to target variables under the restore options: :func:`plan_restore`
gives the pairs to assign and the report before any value moves; var_map/only errors name the
closest names.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import RestoreMapError
from ..models import RestoreReport
from .naming import closest as _closest
from .naming import listing as _listing
from .naming import prefixes as _prefixes
from .naming import suggest as _suggest
from .options import RestoreOptions
from .saved import SavedVariables, _dtype_name
from .targets import TargetVariables

Pair = tuple[str, str]  # (saved name, target variable name)


@dataclass
class RestorePlan:
    """Which saved value goes into which target variable, and the report before any value moves."""

    pairs: list[Pair]
    report: RestoreReport


def plan_restore(target: TargetVariables, saved: SavedVariables,
                 options: RestoreOptions | None = None) -> RestorePlan:
    """Match saved entries to target variables under `options`; assigns nothing.

    Raises RestoreMapError for a `var_map` or `only` entry that names nothing (listing the
    closest names) or two saved values mapped onto one variable.
    """
    # Over 60 lines: one pass that pairs, selects and checks shapes; its error messages need the
    # state of all three (which map sent what where).
    options = options or RestoreOptions()
    lookup = saved.lookup()
    exact, prefixes = _check_var_map(target, saved, lookup, options.var_map or {})

    chosen: dict[str, str] = {}  # target -> saved
    explicit: set[str] = set()
    prefix_hits: dict[str, list[tuple[str, str]]] = {p: [] for p in prefixes}
    for name in saved.entries:
        names = saved.names_of(name)
        goal: str | None = None
        by_map = False
        hit = next((n for n in names if n in exact), None)
        if hit is not None:
            goal, by_map = exact[hit], True
        else:
            best = max(((p, n) for n in names for p in prefixes if n.startswith(p)),
                       key=lambda pn: len(pn[0]), default=None)
            if best is not None:
                prefix, n = best
                wanted = prefixes[prefix] + n[len(prefix):]
                goal, by_map = target.resolve(wanted), True
                prefix_hits[prefix].append((n, wanted))
            else:
                goal = next((g for n in names if (g := target.resolve(n)) is not None), None)
        if goal is None:
            continue
        if goal in chosen:
            other = chosen[goal]
            if by_map and goal in explicit:
                raise RestoreMapError(
                    f"var_map sends both {other!r} and {name!r} in {saved.source} to the "
                    f"variable {goal!r}; map each saved name to its own variable")
            if not by_map:
                continue  # an explicit map (or the first same-name match) keeps it
        chosen[goal] = name
        if by_map:
            explicit.add(goal)

    for prefix, hits in prefix_hits.items():
        if hits and not any(target.resolve(w) is not None for _, w in hits):
            targets = [w for _, w in hits]
            raise RestoreMapError(
                f"var_map {prefix!r} -> {prefixes[prefix]!r} maps "
                f"{_listing([n for n, _ in hits], 3)} to {_listing(targets, 3)}, none of which is "
                f"a variable of the target; closest target names: "
                f"{_suggest(targets[0], target.all_names(), target.named)}")

    selected = _select(target, saved, lookup, chosen, options.only)
    report = RestoreReport(strict=options.strict)
    show = target.show
    pairs: list[Pair] = []
    paired_saved: set[str] = set()
    missing: list[str] = []
    for tname, var in target.named.items():
        sname = chosen.get(tname)
        if sname is not None:
            paired_saved.add(sname)
        if selected is not None and tname not in selected:
            report.skipped.append(show(tname))
            continue
        if sname is None:
            missing.append(tname)
            continue
        shape, dtype = saved.entries[sname]
        var_shape, var_dtype = tuple(var.shape), _dtype_name(var.dtype)
        if tuple(shape) != var_shape or _dtype_name(dtype) != var_dtype:
            file_side = f"{tuple(shape)} {_dtype_name(dtype)}"
            model_side = f"{var_shape} {var_dtype}"
            if sname == show(tname):
                both = f"{sname}: file {file_side} vs model {model_side}"
            else:
                both = (f"{show(tname)} <- {sname}: file {sname} {file_side} vs model "
                        f"{show(tname)} {model_side}")
            if options.skip_mismatched:
                report.skipped.append(show(tname))
                report.notes.append(f"skipped on mismatch (skip_mismatched=True): {both}")
            else:
                report.mismatched.append(both)
            continue
        pairs.append((sname, tname))
        report.restored.append(show(tname))
    report.missing = [show(t) for t in missing]
    report.unused = [n for n in saved.entries if n not in paired_saved]
    _explain_missing(report, missing, target, saved)
    if options.strict and target.named and not pairs and report.everything_restored:
        # Every variable skipped (all mismatched, say): a restore that restores nothing.
        report.missing.append(f"(nothing restored: all {len(target.named)} variables skipped)")
    return RestorePlan(pairs, report)


def _check_var_map(target: TargetVariables, saved: SavedVariables, lookup: dict[str, str],
                   var_map: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Validate a var_map; returns (exact saved name -> target name, prefix -> prefix)."""
    exact: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    saved_prefixes = _prefixes(lookup)
    for key, value in var_map.items():
        if not isinstance(key, str):
            raise RestoreMapError(f"var_map keys are names in {saved.source}, not "
                                  f"{type(key).__name__} ({key!r})")
        if key.endswith("/"):
            if key == "/":  # init_from_checkpoint's root form: every saved name
                key = ""
            if key and key not in saved_prefixes:
                raise RestoreMapError(
                    f"var_map prefix {key!r} matches no name in {saved.source}; closest saved "
                    f"prefixes: {_suggest(key, saved_prefixes, saved_prefixes)}")
            if not isinstance(value, str) or (value and not value.endswith("/")):
                raise RestoreMapError(
                    f"var_map prefix {key or '/'!r} must map to a prefix ending in '/' (or "
                    f"''), not {value!r}")
            prefixes[key] = "" if value == "/" else value
            continue
        if key not in lookup:
            raise RestoreMapError(
                f"var_map key {key!r} is not a variable in {saved.source}; closest saved names: "
                f"{_suggest(key, lookup, saved.entries)}")
        if isinstance(value, str):
            goal = target.resolve(value)
            if goal is None:
                raise RestoreMapError(
                    f"var_map[{key!r}] = {value!r} is not a variable of the target; closest "
                    f"target names: {_suggest(value, target.all_names(), target.named)}")
        else:
            goal = target.name_of(value)
            if goal is None:
                raise RestoreMapError(
                    f"var_map[{key!r}] is {getattr(value, 'name', value)!r}, which is not a "
                    f"variable of the target model (target variables: "
                    f"{_listing(list(target.named))})")
        exact[key] = goal
    return exact, prefixes


def _select(target: TargetVariables, saved: SavedVariables, lookup: dict[str, str],
            chosen: dict[str, str], only: Sequence[Any] | None) -> set[str] | None:
    """Target variable names `only` selects (None: everything)."""
    if only is None:
        return None
    if not only:
        raise RestoreMapError("only= is empty: nothing would be restored (leave it out to "
                              "restore everything)")
    by_saved = {s: t for t, s in chosen.items()}
    selected: set[str] = set()
    for entry in only:
        if not isinstance(entry, str):
            name = target.name_of(entry)
            if name is None:
                raise RestoreMapError(f"only= holds {getattr(entry, 'name', entry)!r}, which is "
                                      "not a variable of the target model")
            selected.add(name)
            continue

        def hit(n: str, entry: str = entry) -> bool:
            return n == entry or (entry.endswith("/") and n.startswith(entry))

        found = {c for n, c in {**target.aliases, **{k: k for k in target.named}}.items()
                 if hit(n)}
        found |= {by_saved[s] for n, s in lookup.items() if hit(n) and s in by_saved}
        if not found:
            in_file = sorted({s for n, s in lookup.items() if hit(n)})
            if in_file:  # selecting a saved value that goes nowhere would restore nothing
                raise RestoreMapError(
                    f"only= entry {entry!r} selects {_listing(in_file, 3)} in {saved.source}, "
                    "which no variable of the target takes; map it with var_map= (closest "
                    f"target names: {_suggest(in_file[0], target.all_names(), target.named)})")
            pool = [*target.all_names(), *lookup, *_prefixes(target.all_names()),
                    *_prefixes(lookup)]
            raise RestoreMapError(
                f"only= entry {entry!r} names no variable of the target and nothing in "
                f"{saved.source}; closest names: {_suggest(entry, pool, target.named)}")
        selected |= found
    return selected


def _explain_missing(report: RestoreReport, missing: list[str], target: TargetVariables,
                     saved: SavedVariables) -> None:
    """A note per missing variable: not found in the file, and what it might be called there."""
    for canonical in missing[:8]:
        var, name = target.named[canonical], target.show(canonical)
        close = _closest(name, report.unused)
        same_shape = sorted(
            (u for u in report.unused if tuple(saved.entries[u][0]) == tuple(var.shape)
             and _dtype_name(saved.entries[u][1]) == _dtype_name(var.dtype)),
            key=lambda u: -difflib.SequenceMatcher(None, name, u).ratio())
        hint = ""
        if close or same_shape:  # a same-shape entry with a similar name is the best guess
            ranked = list(dict.fromkeys([c for c in close if c in same_shape] + same_shape
                                        + close))
            guess = ranked[0]
            names = _listing(ranked, 3)
            hint = f"; unused in the file: {names} (map it: var_map={_suggest_map(guess, name)})"
        report.notes.append(f"{name}: not found in {saved.source}{hint}")


def _suggest_map(saved_name: str, target_name: str) -> str:
    """``{'enc/': 'encoder/'}`` when two names differ only in their scope, else name: name."""
    a, b = saved_name.split("/"), target_name.split("/")
    same = 0
    while same < min(len(a), len(b)) - 1 and a[-1 - same] == b[-1 - same]:
        same += 1
    if same:
        old, new = "/".join(a[:-same]) + "/", "/".join(b[:-same]) + "/"
        return f"{{{old!r}: {new!r}}}"
    return f"{{{saved_name!r}: {target_name!r}}}"

