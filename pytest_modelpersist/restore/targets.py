"""The restore target's variables: canonical names (as models.variables names them), aliases
(Keras paths, legacy HDF5 names, object paths) and identities, in :class:`TargetVariables`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..models import GRAPH, KERAS, KERAS2, MODULE, describe, tf_variable, variables
from .saved import h5_layer_weight_names


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

    from .._tf import import_tensorflow

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

