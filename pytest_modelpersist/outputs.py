"""Outputs by path, files without a manifest, and lookup tables a restore lost.

Helpers of `persist.check` / `persist.restore` for the nested I/O contract (issue 11): outputs
are paired and compared by path, never by position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .compare import EXACT, ArrayComparison, compare_outputs, dtype_name
from .decision import Judgement, judge_check
from .formats.base import Artifact, Restored
from .nest import align, flat_arrays


@dataclass
class CheckResult:
    """What `persist.check` did: the artifact, the restores, outputs and comparisons."""

    format: str
    artifact: Artifact
    restored: list[Restored]
    expected: Any  # the original outputs: a list of arrays, or the model's own nest (a dict)
    actual: list[Any]  # per restore, the same
    comparisons: list[list[ArrayComparison]]



def named_leaves(outputs: Any) -> dict[str, np.ndarray]:
    """Path -> numpy array of any outputs (a nest, tensors, composites)."""
    names, arrays = flat_arrays(outputs)
    return dict(zip(names, arrays, strict=True))


def compare_by_path(expected: Mapping[str, Any], actual: Mapping[str, Any],
                    options: Any) -> list[ArrayComparison]:
    """Compare two path -> array mappings under `options` (table, rtol, atol, exact: a
    CheckOptions); a path only one side has is a problem of its own."""
    pairs = align(expected, actual)
    rtol, atol = options.scalar_tolerance()
    comparisons = compare_outputs(pairs.expected, pairs.actual, table=options.table,
                                  rtol=rtol, atol=atol, exact=options.exact, names=pairs.names)
    for side, names, values in (("expected", pairs.only_expected, expected),
                                ("actual", pairs.only_actual, actual)):
        for name in names:
            arr = np.asarray(values[name])
            shape, dtype = tuple(arr.shape), dtype_name(arr.dtype)
            result = ArrayComparison(name, shape, shape, dtype, dtype, EXACT)
            result.problem = (f"only the {side} side has this output (expected "
                              f"{', '.join(expected) or 'none'}; got "
                              f"{', '.join(actual) or 'none'})")
            comparisons.append(result)
    return comparisons



def judge_by_path(expected: Mapping[str, Any], actual: Mapping[str, Any],
                  options: Any) -> Judgement:
    """decision.judge_check on outputs paired by path; a path only one side has is a problem
    of its own (no decision policy: there is nothing to pair)."""
    pairs = align(expected, actual)
    if pairs.only_expected or pairs.only_actual:
        found = compare_by_path(expected, actual, options)
        return Judgement(found, [None] * len(found))
    return judge_check(pairs.expected, pairs.actual, options, names=pairs.names)

def foreign_artifact(where: Any, current: str, *, format: str | None = None,
                     inputs: Sequence[str] = (), outputs: Sequence[str] = ()) -> Artifact:
    """An Artifact for files the plugin did not write (no manifest): a training run's Saver
    directory (``ckpt``), a frozen graph (``pb``), a SavedModel directory.

    Raises ValueError when the description is incomplete or names another format than the
    test item's (`current`).
    """
    if isinstance(where, Artifact) or format is None or not outputs:
        raise ValueError("format=, inputs= and outputs= describe files the plugin did not "
                         "write: pass their directory (or file), format= and at least "
                         "outputs= (tensor names such as 'add:0')")
    if format != current:
        raise ValueError(f"this test item restores {current!r} files, not {format!r}: narrow "
                         f"the test with @pytest.mark.persist(formats=[{format!r}])")
    path = Path(where)
    directory = path if path.is_dir() else path.parent
    if format == "pb" and path.is_dir():
        found = sorted(path.glob("*.pb"))
        if len(found) != 1:
            raise ValueError(f"{path} holds {len(found)} .pb files; pass the file itself")
        path = found[0]
    elif format == "ckpt":
        path = directory / "model"  # the `checkpoint` state file picks the prefix
    kind = "tf.Module" if format == "savedmodel" else "tf1-graph"
    return Artifact(format, path, directory, kind,
                    {"inputs": list(inputs), "outputs": list(outputs), "foreign": True})


def manifest_problem(artifact: Artifact, current: str) -> str | None:
    """Why an artifact read from its directory's manifest is refused for format `current`,
    or None: it names another format, or a path outside its directory."""
    where = f"{artifact.directory / 'modelpersist.json'}"
    if artifact.format != current:
        return (f"{artifact.directory} holds an artifact of format {artifact.format!r} (per "
                f"its manifest {where}), not {current!r}: restore it with the "
                f"{artifact.format!r} format")
    directory = artifact.directory.resolve()
    if directory not in artifact.path.resolve().parents and (
            artifact.path.resolve() != directory):
        return (f"the manifest {where} names {artifact.path}, outside the artifact's "
                "directory: refused")
    return None


def missing_tables(saved: Sequence[Mapping[str, Any]] | None, model: Any) -> list[str]:
    """The saved lookup tables the restored `model` does not hold as saved ([] if none).

    Only models whose tables can be listed (Keras models, tf.Modules) are checked; a loaded
    SavedModel's outputs tell instead.
    """
    if not saved or model is None:
        return []
    from .tables import accountable, unrestored_tables

    return unrestored_tables(model, list(saved)) if accountable(model) else []
