"""The golden policy: one function deciding record / compare / update / fail for one golden.

Like pytest-regressions' ``perform_regression_check(check_fn, dump_fn)``, `check` owns the
paths, first-run creation, ``--update-golden`` and the failure text; the caller supplies how
to compare (`compare`) and how to turn a library error into a failure (`guard`). No numerics
here (compare.py), no file format (golden.py).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import golden as golden_files
from .golden_paths import delete_inside, obtained_path, run_marker
from .report import environment_notes

if TYPE_CHECKING:
    import numpy as np

    from .compare import ArrayComparison
    from .decision import Judgement

#: Judges outputs against a stored golden (elementwise, or by the check's decision options).
Compare = Callable[["golden_files.Golden"], "Judgement"]
Guard = Callable[[str, Path], AbstractContextManager[Any]]


@dataclass
class GoldenTarget:
    """Where one test's goldens live and how this run treats them."""

    directory: Path
    base_name: str  # the test's golden name: its id without the format parameter
    owner: str  # the test id recorded in each sidecar (no format parameter)
    nodeid: str  # this item's id, for the update command
    update: bool = False
    label: str = ""  # this item's persist id (h5, pb-capi), to say who saw what
    run_id: str | None = None  # set: goldens written in this run are recognised
    events: list[tuple[str, str]] = field(default_factory=list)
    used: set[Path] = field(default_factory=set)

    def sidecar(self, name: str | None) -> Path:
        full = self.base_name if name is None else f"{self.base_name}--{name}"
        return golden_files.sidecar_path(self.directory, full)

    def update_command(self) -> str:
        return f'pytest "{self.nodeid}" --update-golden'


def check(target: GoldenTarget, outputs: Sequence[np.ndarray], *, name: str | None,
          inputs_crc: str | None, compare: Compare, guard: Guard, what: str,
          seen: str = "outputs", reuse: bool = False, names: Sequence[str] | None = None
          ) -> Path:
    """Compare `outputs` with the golden `name` of `target`; record or update it if asked.

    `what` names the outputs in a mismatch title ("the original model's outputs"), `seen` in
    a nondeterminism report ("original outputs"). `reuse` allows a second comparison with a
    golden this item already used. Returns the sidecar path; fails the test otherwise.
    """
    __tracebackhide__ = True
    sidecar = target.sidecar(name)
    if sidecar in target.used and not reuse:
        pytest.fail(f"golden {sidecar} is already used by this test: give each check() and "
                    "assert_golden() call of one test its own name=", pytrace=False)
    target.used.add(sidecar)
    label = f"[{target.label}] " if target.label else ""
    # Each array is stored under its output path (``output_0``, ``horizon_7d``, ``a/1/b``).
    names = list(names) if names is not None else [f"output_{i}" for i in range(len(outputs))]
    lock: AbstractContextManager[Any] = contextlib.nullcontext()
    if target.update:
        with guard("lock golden", sidecar):
            lock = golden_files.golden_lock(sidecar)
            lock.__enter__()
    try:
        message = _decide(target, sidecar, list(outputs), names, inputs_crc, compare, guard,
                          label=label, what=what, seen=seen)
    finally:
        lock.__exit__(None, None, None)
    if message is not None:
        pytest.fail(message, pytrace=False)
    return sidecar


def _decide(target: GoldenTarget, sidecar: Path, outputs: list[np.ndarray], names: list[str],
            inputs_crc: str | None, compare: Compare, guard: Guard, *, label: str, what: str,
            seen: str) -> str | None:
    """Record, pass, update or explain (the failure text) one golden; under the lock."""
    __tracebackhide__ = True

    def write(event: str) -> None:
        with guard("write golden", sidecar):
            golden_files.write_golden(sidecar, outputs, names=names, test=target.owner,
                                      inputs_crc=inputs_crc)
            _mark_written(target, sidecar)
        target.events.append((event, str(sidecar)))
        delete_inside(sidecar.parent, obtained_path(sidecar))

    if not sidecar.exists() and not sidecar.is_symlink():
        if not target.update:
            return f"{label}golden missing: {sidecar}\nrecord it with: {target.update_command()}"
        write("recorded")
        return None
    try:
        stored = golden_files.read_golden(sidecar)
    except golden_files.GoldenError as exc:
        if target.update:  # --update-golden repairs a test's own broken golden
            write("updated")
            return None
        return f"{label}{exc}\nre-record it with: {target.update_command()}"
    judged = compare(stored)
    comparisons = judged.comparisons
    if judged.ok:
        delete_inside(sidecar.parent, obtained_path(sidecar))
        return None
    writer = _written_by(target, sidecar)
    if target.update and writer is not None and writer != target.label:
        return (f"{label}{_subject(seen)} not deterministic: [{writer}] and [{target.label}] "
                f"saw different {seen} ({_how_much(comparisons)}); the golden {sidecar} keeps "
                f"[{writer}]'s. Seed the model's initializers, turn dropout off (training="
                "False), or pass golden=False for this test.")
    if target.update:
        write("updated")
        return None
    footer = environment_notes(stored.recorded_with, golden_files.environment())
    recorded_inputs = stored.doc.get("inputs")
    if inputs_crc and recorded_inputs and recorded_inputs != inputs_crc:
        footer.insert(0, f"the inputs changed since the golden was recorded (checksum "
                         f"{recorded_inputs} -> {inputs_crc}): the difference may come from "
                         "the inputs, not the model")
    elif inputs_crc and recorded_inputs:
        footer.insert(0, "the inputs are the ones the golden was recorded with: the model "
                         "(or the library computing it) changed")
    footer.append(_write_obtained(sidecar, outputs, names))
    footer.append(f"to accept the new outputs: {target.update_command()}")
    return judged.report(f"{label}{what} differ from the golden {sidecar}:", footer=footer)


def _subject(seen: str) -> str:
    return "this model's outputs are" if seen == "original outputs" else "these outputs are"


def _how_much(comparisons: list[ArrayComparison]) -> str:
    bad = [c for c in comparisons if not c.ok]
    numbers = [c.max_abs for c in bad if c.problem is None and math.isfinite(c.max_abs)]
    if len(numbers) == len(bad):
        return f"max abs {max(numbers):.3g}"
    return "; ".join(f"{c.name}: {c.problem or f'max abs {c.max_abs:.3g}'}" for c in bad)


def _write_obtained(sidecar: Path, outputs: list[np.ndarray], names: list[str]) -> str:
    """Leave the outputs beside the golden for a reviewer to diff; returns the footer line."""
    path = obtained_path(sidecar)
    try:
        golden_files.write_arrays(path, outputs, names)
    except Exception as exc:  # best effort: the mismatch report matters more than this file
        return f"(could not write the obtained outputs to {path}: {type(exc).__name__}: {exc})"
    return f"obtained outputs written to {path} (removed when the test passes)"


def _mark_written(target: GoldenTarget, sidecar: Path) -> None:
    if target.run_id is not None:
        run_marker(target.run_id, sidecar).write_text(target.label)


def _written_by(target: GoldenTarget, sidecar: Path) -> str | None:
    """The item that wrote `sidecar` earlier in this run (any xdist worker), or None."""
    if target.run_id is None:
        return None
    try:
        return run_marker(target.run_id, sidecar).read_text()[:200]
    except (OSError, golden_files.GoldenError):
        return None


def check_named(target: GoldenTarget, named: dict[str, np.ndarray], *, name: str | None,
                inputs: Any, judge: Callable[[dict[str, np.ndarray]], Judgement], guard: Guard,
                what: str, seen: str = "outputs", reuse: bool = False) -> Path:
    """:func:`check` for outputs by path (outputs.named_leaves): `judge(stored)` gets the
    golden's arrays by their recorded names (``output_<i>`` for goldens recorded without
    names); `inputs` (or None) are checksummed to tell changed inputs from a changed model."""
    __tracebackhide__ = True
    from .models import as_input_list

    def compare(stored: golden_files.Golden) -> Judgement:
        stored_names = (stored.names if len(stored.names) == len(stored.arrays) else
                        [f"output_{i}" for i in range(len(stored.arrays))])
        return judge(dict(zip(stored_names, stored.arrays, strict=True)))

    return check(target, list(named.values()), names=list(named), name=name, compare=compare,
                 what=what, seen=seen, guard=guard, reuse=reuse,
                 inputs_crc=(golden_files.inputs_checksum(as_input_list(inputs))
                             if inputs is not None else None))
