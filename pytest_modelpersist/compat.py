"""Keras 2 beside Keras 3, TensorFlow 2.15 to 2.21: the one module that knows the difference.

* Keras 3 is the `keras` package, version 3 (TensorFlow 2.16 and later).
* Keras 2 is the `tf_keras` package (any TensorFlow; `tf.keras` is `tf_keras` when
  ``TF_USE_LEGACY_KERAS=1``), or the `keras` package itself when its version is 2 (TensorFlow
  2.15 and earlier, where `tf.keras` is Keras 2).

Nothing here imports TensorFlow or Keras: a model's package is looked up among the modules
already imported (a model exists, so its package is loaded). Only public Keras 2 API is used.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

#: The packages that can be Keras 2, the dedicated one first.
KERAS2_PACKAGES = ("tf_keras", "keras")


def major_version(package: Any) -> int:
    """The major version of a Keras package (``2`` for tf_keras and keras 2.x, ``3``...)."""
    version = str(getattr(package, "__version__", "0"))
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def keras2_package(model: Any) -> Any | None:
    """The Keras 2 package (`tf_keras`, or `keras` 2.x) whose `Model` `model` is, or None.

    Looks only at packages already imported, so it never imports TensorFlow.
    """
    for name in KERAS2_PACKAGES:
        package = sys.modules.get(name)
        if package is None or major_version(package) != 2:
            continue
        model_class = getattr(package, "Model", None)
        if isinstance(model_class, type) and isinstance(model, model_class):
            return package
    return None


def import_keras2(name: str) -> Any:
    """Import a Keras 2 package by the name an artifact recorded (``tf_keras`` or ``keras``).

    Raises ImportError naming what is installed when that package is not Keras 2 here (a
    Keras 2 ``keras`` artifact restored where `keras` is Keras 3: install tf-keras).
    """
    if name not in KERAS2_PACKAGES:
        raise ImportError(f"{name!r} is not a Keras 2 package (expected one of "
                          f"{', '.join(KERAS2_PACKAGES)})")
    from ._tf import import_tensorflow

    import_tensorflow()  # quietly, first: the Keras packages import TensorFlow
    try:
        package = importlib.import_module(name)
    except ImportError:
        if name == "keras":  # saved by TF <= 2.15's own Keras 2: tf_keras reads the same files
            return import_keras2("tf_keras")
        raise ImportError(
            "this artifact holds a Keras 2 model and the tf_keras package is not installed: "
            "pip install tf-keras (the version of your TensorFlow)") from None
    if major_version(package) != 2:
        if name == "keras":
            return import_keras2("tf_keras")
        raise ImportError(f"{name} {package.__version__} is not Keras 2")
    return package


def model_family(package: Any, model: Any) -> str:
    """``Sequential``, ``Functional`` or ``subclassed (<class>)`` for a Keras 2 model."""
    if isinstance(model, package.Sequential):
        return "Sequential"
    if getattr(model, "_is_graph_network", False):
        # A Functional subclass (a backbone class) is built from inputs/outputs too.
        name = type(model).__name__
        return "Functional" if name == "Functional" else f"Functional ({name})"
    return f"subclassed ({type(model).__name__})"


def short_name(name: str) -> str:
    """A TF variable name without its output index (``d1/kernel:0`` -> ``d1/kernel``)."""
    return str(name).split(":", 1)[0]


def layer_weight_names(layer_name: str, weight_paths: Iterable[str]) -> list[str]:
    """``<layer>/<weight>`` for each of a layer's weights (``enc/kernel``).

    The weight part is the last component of the weight's name or path (Keras 2 names end in
    ``:0``, dropped); when two weights of the layer share it (a nested model used as a layer),
    the whole name is used instead. Legacy HDF5 files name their entries by the same rule.
    """
    full = [short_name(p) for p in weight_paths]
    short = [n.rsplit("/", 1)[-1] for n in full]
    if len(set(short)) != len(short):
        short = full
    return [f"{layer_name}/{s}" for s in short]


#: A path component's trailing ``_<n>`` (``forward_gru_1/``), not the weight's own name.
_AUTO_NUMBER = re.compile(r"_\d+(?=/)")


def _layer_weights(model: Any) -> list[tuple[str, str, Any]]:
    """(``<layer>/<weight>``, position key, variable) of a Keras 2 model, in layer order.

    The position key (``3.Dense/kernel``: index among the model's layers, class, weight) is
    what a rebuilt model of the same architecture has at the same place, although Keras 2 gave
    its layers new names (``dense_1`` for ``dense``).
    """
    found: list[tuple[str, str, Any]] = []
    # Keras 2's lookup layers list a trackable that is no variable among their weights (a
    # VocabWeightHandler, which saves the vocabulary): seen as taken, never named.
    seen: set[int] = {id(w) for w in model.weights if not _is_variable(w)}
    for i, layer in enumerate(model.layers):
        weights = [w for w in layer.weights if id(w) not in seen]
        names = layer_weight_names(layer.name, [w.name for w in weights])
        keys = []
        for name in names:
            weight = name[len(layer.name) + 1:]
            # A layer with sublayers names its weights under its own, auto-generated name
            # (multi_head_attention_1/query/kernel), which a rebuilt model does not share, and
            # under its sublayers' (bidirectional_1/forward_gru_1/gru_cell/kernel): numbers
            # Keras 2 counts up per process, dropped here.
            weight = _AUTO_NUMBER.sub("", weight.removeprefix(f"{layer.name}/"))
            keys.append(f"{i}.{type(layer).__name__}/{weight}")
        if len(set(keys)) != len(keys):  # sublayers told apart only by those numbers
            keys = [f"{i}.{type(layer).__name__}/#{j}" for j in range(len(keys))]
        for name, key, w in zip(names, keys, weights, strict=True):
            seen.add(id(w))
            found.append((name, key, w))
    for w in model.weights:  # a subclassed model's own add_weight: no layer owns it
        if id(w) not in seen:
            seen.add(id(w))
            found.append((short_name(w.name), f"model/{short_name(w.name)}", w))
    return found


def _is_variable(weight: Any) -> bool:
    return callable(getattr(weight, "assign", None))


def non_variable_weights(model: Any) -> list[str]:
    """``<layer> (<class>)`` for each top-level layer of a Keras 2 model that lists a weight
    that is no variable (a lookup layer's VocabWeightHandler, which holds its vocabulary).

    Keras 2's legacy HDF5 files hold variables only: saving such a model raises
    NotImplementedError.
    """
    return [f"{layer.name} ({type(layer).__name__})" for layer in model.layers
            if not all(_is_variable(w) for w in layer.weights)]


def keras2_variables(model: Any) -> dict[str, Any]:
    """A Keras 2 model's variables by ``<layer>/<weight>`` (``d1/kernel``, ``bn/moving_mean``).

    Layers in `model.layers` order, each one's weights in `layer.weights` order (trainable
    first): the order Keras 2's own HDF5 files list them. A variable no top-level layer owns
    (a subclassed model's own `add_weight`) keeps its variable name.
    """
    named: dict[str, Any] = {}
    for name, _, w in _layer_weights(model):
        named.setdefault(name, w)
    return named


def keras2_positions(model: Any) -> dict[str, str]:
    """``<layer>/<weight>`` -> position key (see `_layer_weights`), stored with an artifact."""
    return {name: pos for name, pos, _ in _layer_weights(model)}


def position_renames(model: Any, saved_positions: Mapping[str, str]) -> dict[str, str]:
    """Saved ``<layer>/<weight>`` -> the name of the variable at the same place in `model`.

    Empty unless the artifact recorded its positions (a Keras 2 model saved it) and `model` is
    a Keras model. Only names that differ are listed: a rebuilt model whose auto-generated
    layer names moved on (``dense`` saved, ``dense_3`` now) still takes the right values, as
    Keras 2's own (topological) `load_weights` does; so does a Keras 3 model (its variables
    are named ``layers/dense/vars/0``), as Keras 3's `load_weights` of a legacy file does.
    """
    if not saved_positions:
        return {}
    if keras2_package(model) is not None:
        here = {pos: name for name, pos, _ in _layer_weights(model)}
    elif _is_keras3_model(model):
        here = _keras3_positions(model)
    else:
        return {}
    return {saved: here[pos] for saved, pos in saved_positions.items()
            if pos in here and here[pos] != saved}


def _is_keras3_model(model: Any) -> bool:
    package = sys.modules.get("keras")
    return (package is not None and major_version(package) == 3
            and isinstance(model, getattr(package, "Model", ())))


def _keras3_positions(model: Any) -> dict[str, str]:
    """Position key (as `_layer_weights` makes them) -> the Keras 3 variable's name there.

    A key two variables share (sublayers' weights of one layer) is left out: ambiguous.
    """
    from .models import keras_variables

    name_of = {id(v): name for name, v in keras_variables(model).items()}
    found: dict[str, str] = {}
    shared: set[str] = set()
    for i, layer in enumerate(model.layers):
        for w in layer.weights:
            key = f"{i}.{type(layer).__name__}/{w.name}"
            if key in found:
                shared.add(key)
            if id(w) in name_of:
                found[key] = name_of[id(w)]
    return {k: v for k, v in found.items() if k not in shared}


def artifact_meta(model: Any) -> dict[str, Any]:
    """What restoring a Keras 2 model's artifact needs besides its files, or {} for others.

    The package to load it with (``tf_keras``, or ``keras`` 2.x), and its variables' positions
    (see position_renames).
    """
    package = keras2_package(model)
    if package is None:
        return {}
    return {"keras_package": package.__name__, "keras2_positions": keras2_positions(model)}


def legacy_keras_requested() -> bool:
    """True when ``TF_USE_LEGACY_KERAS`` asks TensorFlow 2.16+ for Keras 2 as `tf.keras`."""
    return os.environ.get("TF_USE_LEGACY_KERAS", "").strip().lower() in ("1", "true", "yes")


def keras_package_of(model: Any) -> Any:
    """The Keras package a model belongs to: its Keras 2 package, else `keras` (Keras 3, or
    Keras 2.15 on TF 2.15). Imports TensorFlow when `keras` is not loaded yet."""
    package = keras2_package(model)
    if package is not None:
        return package
    from ._tf import import_keras

    return import_keras()


def build_optimizer(optimizer: Any, variables: Any) -> None:
    """Create `optimizer`'s slot variables for `variables` unless it has them.

    Keras 3 optimizers say so in `built`; Keras 2 ones have no public flag, and their
    `build()` returns at once when already built (keras/src/optimizers/optimizer.py in Keras
    2.15). Keras 2's legacy optimizers have no `build()`: they create slots when they train.
    """
    if not getattr(optimizer, "built", False) and callable(getattr(optimizer, "build", None)):
        optimizer.build(variables)


def metrics_variables(model: Any) -> list[Any]:
    """A compiled model's metric variables (totals and counts): Keras 3's `metrics_variables`,
    or each Keras 2 metric's `variables`."""
    found = getattr(model, "metrics_variables", None)
    if found is None:
        found = [v for metric in getattr(model, "metrics", []) for v in metric.variables]
    return list(found)


def is_layer_graph(model: Any) -> bool:
    """True for a Functional or Sequential Keras model (one whose layers can be tapped).

    Neither Keras has a public test for it, so one function per version: Keras 2 marks graph
    networks with `_is_graph_network` (Keras 2.15 and tf_keras: keras/src/engine/
    functional.py); Keras 3's are instances of `keras.src.models.functional.Functional`.
    """
    package = keras2_package(model)
    if package is not None:
        return bool(getattr(model, "_is_graph_network", False))
    keras = sys.modules.get("keras")
    if keras is None or major_version(keras) < 3:
        return False
    try:
        from keras.src.models.functional import Functional
    except ImportError:  # another Keras 3 layout: Sequential models still qualify
        return isinstance(model, keras.Sequential)
    return isinstance(model, (Functional, keras.Sequential))


def safe_mode_scopes() -> list[Any]:
    """A ``SafeModeScope(True)`` for each Keras package loaded (`keras`, `tf_keras`).

    In Keras 3 and Keras 2 alike a global `enable_unsafe_deserialization()` wins over an
    explicit ``load_model(..., safe_mode=True)``, and a scope wins over it. The scope is not
    public in either: ``<package>.src.saving.serialization_lib.SafeModeScope`` in Keras 3,
    Keras 2.15 and tf_keras. A package without it gets none (the argument still applies).
    """
    scopes = []
    for name in ("keras", "tf_keras"):
        if name not in sys.modules:
            continue
        try:
            lib = importlib.import_module(f"{name}.src.saving.serialization_lib")
        except ImportError:
            continue
        scope = getattr(lib, "SafeModeScope", None)
        if scope is not None:
            scopes.append(scope(True))
    return scopes


def unregistered_objects(package: Any, path: Any) -> list[dict[str, Any]]:
    """The objects of a `.keras` archive's config whose registered class (``zoo>Gated``) the
    Keras 2 `package` does not know in this process; [] when none, or not a readable archive.

    Keras 2 reads such an object as its class name when the config names a module (the class
    was defined outside ``__main__``) and fails later with "'str' object is not callable"
    (keras/src/saving/serialization_lib.py in Keras 2.15): this names the class instead.
    """
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    found: list[dict[str, Any]] = []
    pending = [config]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(reversed(node))
        elif isinstance(node, dict):
            name = node.get("registered_name")
            if (isinstance(name, str) and ">" in name and "class_name" in node
                    and package.saving.get_registered_object(name) is None):
                found.append(node)
            pending.extend(reversed(list(node.values())))
    return found
