"""The restore engine: perturb the variables about to be restored, fill them, verify that each
changed, and account for every name in a RestoreReport.

:func:`restore_variables` restores by name (a plan from :mod:`.plan`);
:func:`restore_into_rebuilt` lets a format's own loader fill the whole model. Both perturb
first (models.perturb) and report any variable the restore left unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import compat
from ..models import KERAS_KINDS, GraphModel, RestoreReport, describe, run, tf_variable, variables
from .options import RestoreOptions
from .perturb import Perturbation, perturb, unrestored
from .plan import Pair, plan_restore
from .saved import SavedVariables
from .targets import TargetVariables, target_variables

if TYPE_CHECKING:
    from ..formats.base import Artifact, Restored

def assign_pairs(target: Any, tv: TargetVariables, pairs: Sequence[Pair],
                 read: Callable[[str], np.ndarray]) -> None:
    """Assign each target variable of `pairs` the saved value read under its saved name."""
    if isinstance(target, GraphModel):
        target.load_values([(tv.named[t], read(s)) for s, t in pairs])
        return
    for sname, tname in pairs:
        tf_variable(tv.named[tname]).assign(read(sname))


def _perturb(target: Any, tv: TargetVariables, names: Sequence[str]) -> Perturbation:
    """Perturb the float variables about to be restored (and only those); see models.perturb."""
    return perturb(target, named={n: tv.named[n] for n in dict.fromkeys(names)})


def _unrestored(target: Any, perturbed: Perturbation) -> list[str]:
    """The perturbed variables whose sampled elements the restore left as they were."""
    return unrestored(target, perturbed)


def aligned_by_position(saved: SavedVariables, target: Any,
                        positions: Mapping[str, str] | None) -> SavedVariables:
    """`saved` with Keras 2 ``<layer>/<weight>`` names moved to the target's at each position.

    A rebuilt Keras 2 model gets new auto-generated layer names (``dense_3``); the artifact's
    recorded positions (compat.keras2_positions) say which saved name is which variable now.
    Each renamed entry keeps its saved name as an alias (var_map and only still take it).
    """
    renames = {old: new for old, new in compat.position_renames(target, positions or {}).items()
               if old in saved.entries}
    entries = {renames.get(n, n): e for n, e in saved.entries.items()}
    if not renames or len(entries) != len(saved.entries):  # two onto one: names stay as saved
        return saved
    back = {new: old for old, new in renames.items()}
    aliases = {renames.get(n, n): a for n, a in saved.aliases.items()}
    for new, old in back.items():
        aliases[new] = (old, *aliases.get(new, ()))
    return SavedVariables(entries, lambda name: saved.read(back.get(name, name)),
                          source=saved.source, aliases=aliases)


def restore_variables(
    fmt: str,
    artifact: Artifact,
    saved: SavedVariables,
    options: RestoreOptions,
    *,
    how: str,
    object_root: str | None = None,
    display: str | None = None,
    assign: Callable[[Any, TargetVariables, list[Pair]], str | None] | None = None,
    load: Callable[[Any, RestoreReport], str | None] | None = None,
) -> Restored:
    """Restore `saved` by name into `options.into` (or a fresh `options.build()`).

    The variables about to be restored are perturbed first, so a restore that loads nothing is
    visible: any of them whose sampled elements all still hold their perturbed values is
    reported missing (see :func:`models.perturb`: a restore filling only unsampled elements is
    left to the outputs comparison). Variables left out on purpose (outside `only`, skipped
    mismatches) are not perturbed and keep their current values exactly.

    `load(target, report)` may do the whole restore with the library's own loader
    (``load_weights``) and return how it did, or None to leave it to `assign`;
    `assign(target, names, pairs)` may assign the pairs its own way and return how, or None to
    leave it to the default: each pair's saved value read and assigned.
    """
    from ..formats.base import Restored

    target = restore_target(fmt, artifact, options)
    is_model = not isinstance(target, (Mapping, list, tuple))
    tv = target_variables(target, object_root=object_root, display=display)
    if is_model and display != "h5":  # h5 restores by layer name, as Keras 2's by_name does
        saved = aligned_by_position(saved, target, artifact.meta.get("keras2_positions"))
    plan = plan_restore(tv, saved, options)
    report = plan.report
    restorable = report.everything_restored or not options.strict
    if restorable and plan.pairs:
        noisy = _perturb(target, tv, [t for _, t in plan.pairs])
        done = load(target, report) if load is not None else None
        if done is None and assign is not None:
            done = assign(target, tv, plan.pairs)
        if done is None:
            assign_pairs(target, tv, plan.pairs, saved.read)
        else:
            how = done
        left = [tv.show(n) for n in _unrestored(target, noisy)]
        report.restored = [n for n in report.restored if n not in left]
        report.missing.extend(f"{n} (value unchanged by the restore)" for n in left)
    if is_model:
        def runner(args: list[np.ndarray]) -> list[np.ndarray]:
            return run(target, args)
    else:
        def runner(args: list[np.ndarray]) -> list[np.ndarray]:
            raise TypeError("the restore target is a collection of variables, not a model: "
                            "read the variables instead of calling the restored object")
    return Restored(artifact, target, runner, report, how=how, takes_nest=True)


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


def restore_into_rebuilt(fmt: str, artifact: Artifact, options: RestoreOptions,
                         fill: Callable[[Any], RestoreReport], *, how: str) -> Restored:
    """The whole-model weights restore: perturb the target, `fill` it, account.

    Perturbing first makes a restore that loads nothing visible: every float variable is moved
    inside TensorFlow and a few elements of each are sampled (models.perturb); any variable
    whose sampled elements all still hold their perturbed values afterwards is reported
    missing, whatever `fill` claimed. A restore that fills only unsampled elements of a
    variable escapes this check; the outputs comparison catches it.
    """
    from ..formats.base import Restored

    target = restore_target(fmt, artifact, options)
    named = variables(target)
    perturbed = perturb(target, named=named)
    report = fill(target)
    if report.complete:
        # What the loader claims to have filled but still holds its perturbed value.
        left = [n for n in unrestored(target, perturbed) if n not in report.skipped]
        if not report.restored:
            report.restored = [n for n in named if n not in report.skipped]
        report.restored = [n for n in report.restored if n not in left]
        report.missing.extend(f"{n} (value unchanged by the restore)" for n in left)
    return Restored(artifact, target, lambda args: run(target, args), report, how=how,
                    takes_nest=True)
