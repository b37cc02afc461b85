"""The readers formats hand the restore engine (:func:`.engine.restore_with`).

:class:`ByName` matches what a file holds (:class:`~.saved.SavedVariables`) to the target's
variables under the restore options (var_map, only, strict, skip_mismatched) and assigns the
values, or lets the library's own loader fill them; :class:`WholeModel` lets a format's own
loader fill the whole model and leaves the accounting to the engine's verification.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .. import compat
from ..models import GraphModel, RestoreReport, tf_variable, variables
from .engine import Planned
from .options import RestoreOptions
from .plan import plan_restore
from .saved import SavedVariables
from .targets import target_variables

if TYPE_CHECKING:
    from ..formats.base import Artifact

#: A library loader that may fill the whole target: how it did, or None to assign by name.
Load = Callable[[Any, RestoreReport], str | None]
#: A format's own way of assigning `planned.pairs`: how it did, or None for assign_pairs.
Assign = Callable[[Any, Planned], str | None]


def assign_pairs(target: Any, planned: Planned) -> None:
    """Assign each target variable of `planned.pairs` the saved value read under its name."""
    read = planned.read
    assert read is not None, "a by-name plan carries how to read its saved values"
    if isinstance(target, GraphModel):
        target.load_values([(planned.variables[t], read(s)) for s, t in planned.pairs])
        return
    for sname, tname in planned.pairs:
        tf_variable(planned.variables[tname]).assign(read(sname))


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


class ByName:
    """Restore `saved` by name: matched by :func:`.plan.plan_restore`, then assigned.

    `load(target, report)` may do the whole restore with the library's own loader
    (``load_weights``) and return how it did, or None to leave it to `assign`;
    `assign(target, planned)` may assign `planned.pairs` its own way and return how, or None
    to leave it to :func:`assign_pairs`. `object_root` and `display` say how the target's
    variables are named (see :func:`.targets.target_variables`).
    """

    def __init__(self, saved: SavedVariables, *, object_root: str | None = None,
                 display: str | None = None, load: Load | None = None,
                 assign: Assign | None = None) -> None:
        self.saved = saved
        self.object_root = object_root
        self.display = display
        self.load = load
        self.assign = assign

    def plan(self, target: Any, artifact: Artifact, options: RestoreOptions) -> Planned:
        """The pairs to assign under `options`; nothing to fill unless the report is
        acceptable (a strict restore with a missing name leaves every variable as it was)."""
        tv = target_variables(target, object_root=self.object_root, display=self.display)
        saved = self.saved
        if self.display != "h5" and not isinstance(target, (Mapping, list, tuple)):
            # h5 restores by layer name, as Keras 2's by_name does; the others by position
            saved = aligned_by_position(saved, target, artifact.meta.get("keras2_positions"))
        plan = plan_restore(tv, saved, options)
        chosen = {t: tv.named[t] for _, t in plan.pairs} if plan.report.complete else {}
        return Planned(chosen, plan.report, show=tv.show, pairs=plan.pairs, read=saved.read)

    def fill(self, target: Any, planned: Planned) -> str | None:
        done = self.load(target, planned.report) if self.load is not None else None
        if done is None and self.assign is not None:
            done = self.assign(target, planned)
        if done is None:
            assign_pairs(target, planned)
        return done


class WholeModel:
    """A format's own loader fills the whole model: every variable is planned (and so
    perturbed); `load(target, planned)` fills them and returns how, or None for the format's
    `how`. The engine reports each variable the load left unchanged as missing."""

    def __init__(self, load: Callable[[Any, Planned], str | None]) -> None:
        self.load = load

    def plan(self, target: Any, artifact: Artifact, options: RestoreOptions) -> Planned:
        named = variables(target)
        return Planned(named, RestoreReport(restored=list(named)))

    def fill(self, target: Any, planned: Planned) -> str | None:
        return self.load(target, planned)
