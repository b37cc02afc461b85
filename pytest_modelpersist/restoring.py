"""Fill a model's variables from what a file holds, by name, and account for every name.

Real code rarely restores a model exactly as it was saved: layers are renamed, scopes move, a
backbone goes into a new head. Every variable-holding format describes its file as
:class:`SavedVariables` (name -> shape and dtype, how to read a value, other names an entry is
known by) and hands it to :func:`restore_variables` with the user's :class:`RestoreOptions`:

* ``var_map`` -- saved name -> target variable (or its name); keys ending in ``/`` are prefix
  maps in the style of ``init_from_checkpoint`` (``{'old_scope/': 'new_scope/'}``);
* ``only`` -- restore just these (saved or target names, prefixes, variables); every other
  variable of the target keeps its current value;
* ``strict`` -- missing or mismatched variables fail (the default), or are only reported;
* ``skip_mismatched`` -- a shape or dtype mismatch skips that variable instead of failing.

The target's variables are named as :func:`models.variables` names them (``.weights.h5`` paths
for Keras, attribute paths for a tf.Module, op names for a TF1 graph) and are also found by
their aliases: a Keras variable's ``path`` (``enc/kernel``), its legacy-HDF5 name
(``<layer name>/<weight>``) and, for object-based checkpoints, its object path.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import compat
from .errors import RestoreMapError
from .models import (
    GRAPH,
    KERAS,
    KERAS2,
    KERAS_KINDS,
    MODULE,
    GraphModel,
    Perturbation,
    RestoreReport,
    describe,
    perturb,
    run,
    tf_variable,
    unrestored,
    variables,
)
from .restore.naming import closest as _closest
from .restore.naming import listing as _listing
from .restore.naming import prefixes as _prefixes
from .restore.naming import suggest as _suggest
from .restore.object_paths import checkpoint_object_paths
from .restore.options import RestoreOptions

if TYPE_CHECKING:
    from .formats.base import Artifact, Restored

Pair = tuple[str, str]  # (saved name, target variable name)

#: Suffix of a value's key in an object-based (TF2) checkpoint.
VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def _dtype_name(dtype: Any) -> str:
    return str(getattr(getattr(dtype, "base_dtype", dtype), "name", dtype))


# ---- what a file holds -----------------------------------------------------------------------


@dataclass
class SavedVariables:
    """The variables a file holds: name -> (shape, dtype), a reader, and each entry's aliases.

    `source` names the file in messages. `aliases` lists other names an entry is known by (a
    SavedModel variable's object paths besides its variable name, say).
    """

    entries: dict[str, tuple[tuple[int, ...], Any]]
    read: Callable[[str], np.ndarray]
    source: str = "the file"
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def names_of(self, name: str) -> tuple[str, ...]:
        return (name, *self.aliases.get(name, ()))

    def lookup(self) -> dict[str, str]:
        """Every name and alias -> the entry's name (names win over aliases)."""
        table: dict[str, str] = {}
        for name in self.entries:
            for alias in self.aliases.get(name, ()):
                table.setdefault(alias, name)
        table.update({name: name for name in self.entries})
        return table


def checkpoint_variables(prefix: str, *, source: str | None = None,
                         group_by_variable_name: bool = False) -> SavedVariables:
    """The variables of any TensorFlow checkpoint (TF1 name-based or TF2 object-based).

    Object-based keys lose their ``/.ATTRIBUTES/VARIABLE_VALUE`` suffix
    (``model/_operations/1/_kernel``). With `group_by_variable_name` (a SavedModel's
    ``variables/variables``, where Keras' export tracks each variable in several lists), an
    entry is named by the variable's own name (``enc/kernel``) and its object paths are aliases.
    """
    from ._tf import import_tensorflow

    tf = import_tensorflow()
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    keys: dict[str, str] = {}  # entry name -> checkpoint key
    aliases: dict[str, tuple[str, ...]] = {}
    full_names: dict[str, str] = {}
    other_paths: dict[str, tuple[str, ...]] = {}
    if OBJECT_GRAPH_KEY in shapes:
        full_names = _checkpoint_full_names(reader)
        other_paths = checkpoint_object_paths(reader)
    grouped: dict[str, list[str]] = {}
    for key in sorted(shapes):
        if key == OBJECT_GRAPH_KEY:
            continue
        path = key[: -len(VALUE_SUFFIX)] if key.endswith(VALUE_SUFFIX) else key
        full = full_names.get(key, "")
        if group_by_variable_name and full and path.split("/", 1)[0] in _EXPORT_LISTS:
            grouped.setdefault(full, []).append(key)
            continue
        keys[path] = key
        if other_paths.get(key):
            # The same variable by its other object paths: a trained model's kernel is saved
            # under the optimizer's list (the first path found), a fresh model has no optimizer.
            aliases[path] = tuple(p for p in other_paths[key] if p != path)
    for full, group in grouped.items():
        # One variable appears once per list (`variables/3`, `_all_variables/0`); two keys in
        # the same list are two variables sharing a name: those stay apart, by object path.
        lists = [k.split("/", 1)[0] for k in group]
        same = {(tuple(shapes[k]), _dtype_name(dtypes[k])) for k in group}
        if len(set(lists)) == len(lists) and len(same) == 1 and full not in keys:
            keys[full] = group[0]
            aliases[full] = tuple(k[: -len(VALUE_SUFFIX)] for k in group)
        else:
            keys.update({k[: -len(VALUE_SUFFIX)]: k for k in group})
    entries = {name: (tuple(shapes[k]), dtypes[k]) for name, k in keys.items()}
    return SavedVariables(entries, lambda name: reader.get_tensor(keys[name]),
                          source=source or prefix, aliases=aliases)


# Lists in which Keras' `model.export` (an ExportArchive) tracks the same variables.
_EXPORT_LISTS = {"variables", "_all_variables", "trainable_variables", "non_trainable_variables"}


def _checkpoint_full_names(reader: Any) -> dict[str, str]:
    """Object-based checkpoint key -> the variable's own name, from the object graph."""
    try:
        from tensorflow.core.protobuf import trackable_object_graph_pb2

        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor(OBJECT_GRAPH_KEY))
    except Exception:  # an unreadable object graph: entries keep their object paths
        return {}
    return {attr.checkpoint_key: attr.full_name for node in graph.nodes
            for attr in node.attributes if attr.full_name}


def h5_layer_weight_names(layer_name: str, weight_paths: Sequence[str]) -> list[str]:
    """Names of one layer's weights in a legacy HDF5 file: ``<layer>/<weight>`` (``enc/kernel``).

    The weight part is the last component of Keras' weight path (Keras 2's ``:0`` dropped);
    when two weights of the layer share it (a nested model as a layer), the whole path is used.
    """
    return compat.layer_weight_names(layer_name, weight_paths)


# ---- the target's variables ------------------------------------------------------------------


@dataclass
class TargetVariables:
    """A restore target's variables: canonical name -> variable, plus aliases and identities."""

    named: dict[str, Any]
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> canonical name
    by_id: dict[int, str] = field(default_factory=dict)  # id(variable) -> canonical name
    display: dict[str, str] = field(default_factory=dict)  # canonical -> name in reports

    def show(self, name: str) -> str:
        """The name a report uses: the one in the file's own naming scheme, when known."""
        return self.display.get(name, name)

    def resolve(self, name: str) -> str | None:
        if name in self.named:
            return name
        return self.aliases.get(name)

    def name_of(self, var: Any) -> str | None:
        return self.by_id.get(id(var)) or self.by_id.get(id(tf_variable(var)))

    def all_names(self) -> list[str]:
        return [*self.named, *self.aliases]


def _short(name: str) -> str:
    return name.split(":")[0]


def target_variables(target: Any, *, object_root: str | None = None,
                     display: str | None = None) -> TargetVariables:
    """Name the variables of a restore target (a model, or a dict or list of variables).

    `object_root` adds each variable's object path under ``tf.train.Checkpoint(<root>=target)``
    as an alias: the names an object-based checkpoint gives them. `display` ("path": Keras'
    variable path, "h5": the legacy HDF5 name) picks the alias reports name Keras variables by,
    so they read like the file's names.
    """
    if isinstance(target, Mapping):
        named = dict(target)
    elif isinstance(target, (list, tuple)):
        named = {}
        for v in target:
            named.setdefault(_short(v.name), v)
    else:
        named = variables(target)
    tv = TargetVariables(named)
    for name, v in named.items():
        tv.by_id[id(v)] = name
        tv.by_id.setdefault(id(tf_variable(v)), name)
    candidates: list[tuple[str, str]] = []  # (alias, canonical)
    shown: dict[str, str] = {}  # canonical -> display alias
    kind = None if isinstance(target, (Mapping, list, tuple)) else describe(target).kind
    if kind == KERAS:
        for n, v in named.items():
            if getattr(v, "path", None):
                candidates.append((str(v.path), n))
                if display == "path":
                    shown[n] = str(v.path)
        for layer in getattr(target, "layers", []):
            weights = list(layer.trainable_weights) + list(layer.non_trainable_weights)
            names = h5_layer_weight_names(layer.name, [str(w.path) for w in weights])
            for alias, w in zip(names, weights, strict=True):
                canonical = tv.name_of(w)
                if canonical is not None:
                    candidates.append((alias, canonical))
                    if display == "h5":
                        shown.setdefault(canonical, alias)
    elif kind is not None or named:
        for n, v in named.items():
            raw = getattr(getattr(v, "op", None), "name", None) if kind == GRAPH else None
            vname = getattr(v, "name", None)
            if raw:
                candidates.append((str(raw), n))
            if vname:
                candidates.append((_short(str(vname)), n))
    if object_root is not None and kind in (KERAS, KERAS2, MODULE):
        candidates += [(p, n) for p, n in _object_paths(target, object_root, tv).items()]
    ambiguous: set[str] = set()
    for alias, canonical in candidates:
        if alias in named:
            continue
        if alias in tv.aliases and tv.aliases[alias] != canonical:
            ambiguous.add(alias)
        tv.aliases.setdefault(alias, canonical)
    for alias in ambiguous:  # a name two variables answer to identifies neither
        del tv.aliases[alias]
    tv.display = {n: a for n, a in shown.items() if tv.aliases.get(a) == n}
    return tv


def _escape(name: str) -> str:
    # TensorFlow's escaping of local names in object-based checkpoint keys.
    return name.replace(".", "..").replace("/", ".S")


def _object_paths(target: Any, root_name: str, tv: TargetVariables) -> dict[str, str]:
    """Object path (``model/_operations/1/_kernel``) -> canonical name, breadth first as TF."""
    from collections import deque

    from ._tf import import_tensorflow

    tf = import_tensorflow()
    try:
        # root_name "": the target is the root (Keras 2's save_weights checkpoints)
        root = tf.train.Checkpoint(**{root_name: target}) if root_name else target
        view = tf.train.TrackableView(root)
        paths: dict[str, str] = {}
        seen = {id(root)}
        queue = deque([(root, "")])
        while queue:
            obj, path = queue.popleft()
            try:
                children = view.children(obj)
            except Exception:  # an object TF cannot list: its subtree keeps no aliases
                continue
            for local, child in children.items():
                if id(child) in seen:
                    continue
                seen.add(id(child))
                child_path = f"{path}/{_escape(local)}" if path else _escape(local)
                name = tv.name_of(child)
                if name is not None:
                    paths.setdefault(child_path, name)
                queue.append((child, child_path))
        return paths
    except Exception:  # private structure moved: the report names what did not match
        return {}


# ---- matching ---------------------------------------------------------------------------------


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


# ---- assigning and verifying ------------------------------------------------------------------


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
    from .formats.base import Restored

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
    from .models import ModelInfo, call_build

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
    from .nest import pack
    from .nest_tf import call_model, feedable

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
    from .formats.base import Restored

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
