"""The restore engine: perturb the variables about to be restored, fill them, verify that each
changed, and account for every name in a RestoreReport.

There is one engine, :func:`restore_with`. What differs between formats is the
:class:`Reader` they supply: its `plan` names the variables a restore is about to fill (and
the report before anything moves), its `fill` fills them. :mod:`.readers` has the two readers
the built-in formats share (by name from :class:`~.saved.SavedVariables`, and a format's own
whole-model loader).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..models import KERAS_KINDS, RestoreReport, describe, run
from .options import RestoreOptions
from .perturb import Perturbation, perturb, unrestored
from .plan import Pair

if TYPE_CHECKING:
    from ..formats.base import Artifact, Restored


def _as_is(name: str) -> str:
    return name


@dataclass
class Planned:
    """What a restore is about to fill, before any value moves.

    `variables` (name -> variable) are perturbed, filled and verified; empty, the restore fills
    nothing (the report already says why: a strict restore with missing names, a mismatch).
    Variables outside it keep their values exactly. `report` names are shown as `show` gives
    them. A by-name plan also carries its `pairs` and how to `read` a saved value.
    """

    variables: Mapping[str, Any]
    report: RestoreReport
    show: Callable[[str], str] = _as_is
    pairs: Sequence[Pair] = ()
    read: Callable[[str], np.ndarray] | None = None


class Reader(Protocol):
    """What a format supplies to the engine: what a restore fills, and how it fills it."""

    def plan(self, target: Any, artifact: Artifact, options: RestoreOptions) -> Planned:
        """The variables of `target` about to be filled and the report so far; moves nothing."""
        ...

    def fill(self, target: Any, planned: Planned) -> str | None:
        """Fill `planned.variables` (it may amend `planned.report`, as a loader's own
        accounting does); returns how it did, or None for the `how` the format gave."""
        ...


def _perturb(target: Any, named: Mapping[str, Any]) -> Perturbation:
    """Perturb the float variables about to be restored (and only those); see models.perturb."""
    return perturb(target, named=named)


def _unrestored(target: Any, perturbed: Perturbation) -> list[str]:
    """The perturbed variables whose sampled elements the restore left as they were."""
    return unrestored(target, perturbed)


def restore_with(fmt: str, artifact: Artifact, options: RestoreOptions, reader: Reader, *,
                 how: str) -> Restored:
    """Restore into `options.into` (or a fresh `options.build()`) through `reader`.

    The variables the plan names are perturbed first, so a restore that loads nothing is
    visible: after `reader.fill`, any of them whose sampled elements all still hold their
    perturbed values is reported missing, whatever the reader claimed (see
    :func:`.perturb.perturb`: a restore filling only unsampled elements is left to the outputs
    comparison). Variables the plan leaves out (outside `only`, skipped mismatches) are not
    perturbed and keep their current values exactly. A report that is not acceptable after the
    fill (the reader's own accounting found something missing) is returned as it is.
    """
    from ..formats.base import Restored

    target = restore_target(fmt, artifact, options)
    planned = reader.plan(target, artifact, options)
    report = planned.report
    if planned.variables:
        noisy = _perturb(target, planned.variables)
        how = reader.fill(target, planned) or how
        if report.complete:
            left = [planned.show(n) for n in _unrestored(target, noisy)]
            left = [n for n in left if n not in report.skipped]
            report.restored = [n for n in report.restored if n not in left]
            report.missing.extend(f"{n} (value unchanged by the restore)" for n in left)
    return Restored(artifact, target, _runner(target), report, how=how, takes_nest=True)


def _runner(target: Any) -> Callable[[Any], Any]:
    """Runs the restored model; a collection of variables is read, not called."""
    if not isinstance(target, (Mapping, list, tuple)):
        return lambda args: run(target, args)

    def refuse(args: Any) -> Any:
        raise TypeError("the restore target is a collection of variables, not a model: "
                        "read the variables instead of calling the restored object")

    return refuse


def restore_target(fmt: str, artifact: Artifact, options: RestoreOptions) -> Any:
    """`options.into`, or a fresh `options.build()` (built when an unbuilt Keras model)."""
    from ..models import ModelInfo, call_build

    target = options.into
    if target is None:
        target = call_build(options.build, fmt,
                            ModelInfo(artifact.model_kind, artifact.model_kind))
    if not isinstance(target, (Mapping, list, tuple)):
        ensure_built(target, artifact)
    return target


def ensure_built(model: Any, artifact: Artifact) -> None:
    """Call an unbuilt Keras model once on zeros shaped like the saved inputs."""
    if describe(model).kind not in KERAS_KINDS or (getattr(model, "built", True)
                                                    and model.variables):
        return
    from ..nest import pack
    from ..nest_tf import call_model, feedable

    specs = artifact.meta.get("input_specs", [])
    zeros = [np.zeros([1 if d is None else d for d in s["shape"]],
                      "S1" if s["dtype"] == "string" else s["dtype"]) for s in specs]
    structure = artifact.meta.get("input_structure")
    if zeros:
        inputs = pack(structure, zeros) if structure else zeros
        call_model(model, feedable(inputs), keras_model=True)
