"""The four model kinds behind one small interface: describe, run, list variables.

* Keras 3 models (Sequential, Functional, subclassed),
* Keras 2 models: `tf_keras`, and `tf.keras` on TensorFlow <= 2.15 (see compat.py),
* `tf.Module` objects whose `__call__` is a `tf.function` (ideally with an `input_signature`),
* TF1 graph models: a `tf.Graph` + `tf.compat.v1.Session`, named by :class:`GraphModel`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import compat
from ._tf import import_tensorflow
from .restore.report import RestoreReport  # noqa: F401  (its public import path)

KERAS = "keras"
KERAS2 = "keras2"
MODULE = "tf.Module"
GRAPH = "tf1-graph"
OTHER = "other"
KINDS = (KERAS, KERAS2, MODULE, GRAPH)
#: The Keras kinds: models that Keras' own save/load API handles.
KERAS_KINDS = (KERAS, KERAS2)

Inputs = Any  # an array, a sequence of arrays (positional inputs), or None for no inputs


@dataclass(frozen=True)
class ModelInfo:
    """What a model is: its family (one of KINDS) and a finer description for messages."""

    kind: str
    detail: str
    #: The Keras package of a Keras 2 model (``tf_keras`` or ``keras``), else "".
    package: str = ""

    def __str__(self) -> str:
        return self.detail


@dataclass
class GraphModel:
    """A TF1 graph model: the session that holds its variables and its named tensors.

    ``GraphModel(sess, inputs=[x], outputs=[add])``. `inputs` and `outputs` are tensors of
    ``sess.graph`` (or their names, ``'x:0'``). Build the graph in ``with tf.Graph().as_default()``
    and a ``tf.compat.v1.Session(graph=g)``: eager execution stays on for the rest of the process.
    """

    session: Any
    outputs: Sequence[Any]
    inputs: Sequence[Any] = ()
    variables: Sequence[Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.outputs, (list, tuple)):
            self.outputs = [self.outputs]
        if not isinstance(self.inputs, (list, tuple)):
            self.inputs = [self.inputs]
        if not self.outputs:
            raise ValueError("GraphModel needs at least one output tensor")

    @property
    def graph(self) -> Any:
        return self.session.graph

    def _tensor(self, t: Any) -> Any:
        return self.graph.get_tensor_by_name(t) if isinstance(t, str) else t

    @property
    def input_names(self) -> list[str]:
        return [self._tensor(t).name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [self._tensor(t).name for t in self.outputs]

    def graph_variables(self) -> list[Any]:
        """The graph's global variables (or the ones given to the constructor)."""
        if self.variables is not None:
            return list(self.variables)
        with self.graph.as_default():
            return list(import_tensorflow().compat.v1.global_variables())

    def load_values(self, pairs: Sequence[tuple[Any, np.ndarray]]) -> None:
        """Assign numpy values to graph variables in one session run."""
        if not pairs:
            return
        tf = import_tensorflow()
        with self.graph.as_default():
            feeds, ops = {}, []
            for var, value in pairs:
                ph = tf.compat.v1.placeholder(var.dtype.base_dtype, var.shape)
                ops.append(var.assign(ph, read_value=False) if hasattr(var, "handle")
                           else tf.compat.v1.assign(var, ph))
                feeds[ph] = value
            self.session.run(ops, feed_dict=feeds)

    def __call__(self, inputs: Inputs = None) -> list[np.ndarray]:
        """Run the graph: the input nest's leaves (flatten order) feed `inputs` in order."""
        from ._session_run import session_run  # under the persist timeout, interruptible
        from .nest import as_array, flatten

        leaves = [] if inputs is None else flatten(inputs)
        if len(leaves) != len(self.input_names):
            raise ValueError(f"the graph takes {len(self.input_names)} inputs "
                             f"({', '.join(self.input_names)}), got {len(leaves)}")
        feeds = dict(zip(self.input_names, leaves, strict=True))
        outs = session_run(self.session, self.output_names, feeds)
        return [as_array(v, name) for v, name in zip(outs, self.output_names, strict=True)]


def as_input_list(inputs: Inputs) -> list[np.ndarray]:
    """The leaves of an input nest as arrays, in flatten order (None -> no inputs)."""
    from .nest import as_array, flatten

    return [] if inputs is None else [as_array(x, "input") for x in flatten(inputs)]


def as_output_list(outputs: Any) -> list[np.ndarray]:
    """The leaves of a model's outputs (any nest) as numpy arrays, in flatten order."""
    from .nest import flat_arrays

    return flat_arrays(outputs)[1]


def signature_order(keys: Iterable[str], meta: Mapping[str, Any], side: str) -> list[str]:
    """A SavedModel signature's input or output keys (`side`) in the model's own order.

    The order a save recorded in the artifact's meta (``signature_inputs``/``_outputs``: a
    Keras 2 model names them after its layers, ``score``, ``aux``), else natural order by name
    (``output_2`` before ``output_10``), which is how exports name positional ones.
    """
    keys = list(keys)
    recorded = list(meta.get(f"signature_{side}") or [])
    if sorted(recorded) == sorted(keys):
        return recorded
    return sorted(keys, key=natural_key)


def natural_key(text: str) -> tuple[Any, ...]:
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text)))


def describe(model: Any) -> ModelInfo:
    """Classify `model` into one of KINDS, or OTHER for objects TensorFlow does not know."""
    if isinstance(model, GraphModel):
        return ModelInfo(GRAPH, "TF1 graph model (GraphModel)")
    if not _tf_loaded_or_model_from_tf(model):
        return ModelInfo(OTHER, f"{type(model).__module__}.{type(model).__name__} object")
    # A Keras 2 Model is a tf.Module, and on TF <= 2.15 `keras` itself is Keras 2: first.
    keras2 = compat.keras2_package(model)
    if keras2 is not None:
        family = compat.model_family(keras2, model)
        return ModelInfo(KERAS2, f"Keras 2 {family} model ({keras2.__name__})",
                         package=keras2.__name__)
    tf = import_tensorflow()
    import keras

    if isinstance(model, keras.Model):
        if isinstance(model, keras.Sequential):
            sub = "Sequential"
        elif _is_functional(model):
            # A Functional subclass (keras-hub backbones) is built from inputs/outputs too.
            sub = "Functional" if type(model).__name__ == "Functional" else (
                f"Functional ({type(model).__name__})")
        else:
            sub = f"subclassed ({type(model).__name__})"
        return ModelInfo(KERAS, f"Keras {sub} model")
    if isinstance(model, tf.Module):
        return ModelInfo(MODULE, f"tf.Module ({type(model).__name__})")
    # Not a TensorFlow model: the built-in formats skip it; a plugin's format may take it.
    return ModelInfo(OTHER, f"{type(model).__module__}.{type(model).__name__} object")


def _tf_loaded_or_model_from_tf(model: Any) -> bool:
    """False for plain Python objects when TensorFlow is not even loaded (no import for them)."""
    import sys

    return "tensorflow" in sys.modules or "keras" in sys.modules


def _is_functional(model: Any) -> bool:
    try:
        from keras.src.models.functional import Functional
    except ImportError:  # another Keras layout: its own flag
        return bool(getattr(model, "_is_graph_network", False))
    return isinstance(model, Functional) and not isinstance(model, _keras_sequential())


def _keras_sequential() -> Any:
    import keras

    return keras.Sequential


def run(model: Any, inputs: Inputs) -> Any:
    """Run any model kind on the input nest; returns its outputs, a nest of numpy arrays.

    Keras models take the nest as given; a tf.Module (any callable) takes a list or tuple as
    positional arguments and a dict as keyword arguments; a GraphModel feeds the leaves.
    """
    from .nest import to_numpy
    from .nest_tf import call_model, feedable

    if isinstance(model, GraphModel):
        return model(inputs)
    info = describe(model)
    if info.kind not in KERAS_KINDS and not callable(model):
        raise TypeError(f"{info.detail} is not callable on inputs")
    return to_numpy(call_model(model, feedable(inputs), keras_model=info.kind in KERAS_KINDS))


def input_specs(inputs: Inputs) -> list[Any]:
    """One named `tf.TensorSpec` per input leaf, with a free batch dimension."""
    from .nest_tf import input_specs as specs

    return specs(inputs)


def concrete_function(model: Any, inputs: Inputs) -> Any:
    """A ConcreteFunction computing the model (Keras or tf.Module) on inputs like `inputs`."""
    from .nest_tf import serving

    return serving(model, inputs)[0]


def function_outputs(fn: Any) -> list[Any]:
    """The tensors a ConcreteFunction returns to its caller.

    `fn.outputs` also lists gradient intermediates once the function has been differentiated
    (a tf.Module trained with a GradientTape); the structured outputs are the real ones.
    """
    tf = import_tensorflow()
    return list(fn.outputs[: len(tf.nest.flatten(fn.structured_outputs))])


# ---- variables -------------------------------------------------------------------------------


def variables(model: Any) -> dict[str, Any]:
    """Name -> variable of everything a restore must fill, named as formats save them.

    Keras 3: the `.weights.h5` path (``layers/dense/vars/0``). Keras 2: ``<layer>/<weight>``
    (``d1/kernel``). tf.Module: the attribute path (``w``, ``dense/b``). TF1 graph: the
    variable op name (``v1``).
    """
    info = describe(model)
    if info.kind == GRAPH:
        return {v.op.name: v for v in model.graph_variables()}
    if info.kind == KERAS:
        return keras_variables(model)
    if info.kind == KERAS2:
        return compat.keras2_variables(model)
    return module_variables(model)


def module_variables(module: Any) -> dict[str, Any]:
    """tf.Module variables by attribute path (``dense/w``), stable across rebuilt modules."""
    tf = import_tensorflow()
    named: dict[str, Any] = {}

    def is_variable(v: Any) -> bool:  # Keras 3 variables (a wrapped Keras model) count too
        return isinstance(v, tf.Variable) or isinstance(getattr(v, "_value", None), tf.Variable)

    try:
        pairs = module._flatten(predicate=is_variable, with_path=True)
        # A variable reachable by two paths (self.w and self.params[0]) is one variable:
        # counted, perturbed and restored once, under its shortest path.
        by_var: dict[int, tuple[int, int, str, Any]] = {}
        for order, (path, v) in enumerate(pairs):
            key, name = id(tf_variable(v)), "/".join(str(p) for p in path)
            if key not in by_var or len(path) < by_var[key][0]:
                by_var[key] = (len(path), by_var.get(key, (0, order))[1], name, v)
        for _, _, name, v in sorted(by_var.values(), key=lambda e: e[1]):
            named.setdefault(name, v)
        # A Keras model held by the module: tf.Module does not look inside it (a Keras 3
        # model is no tf.Module), so its variables come by their .weights.h5 paths.
        for path, layer in _keras_parts(module):
            for name, v in keras_variables(layer).items():
                if id(tf_variable(v)) not in by_var:
                    by_var[id(tf_variable(v))] = (0, 0, name, v)
                    named.setdefault(f"{path}/{name}", v)
    except (AttributeError, TypeError):  # fall back to variable names, made unique
        for v in module.variables:
            base = name = v.name.split(":")[0]
            n = 1
            while name in named:
                name, n = f"{base}_{n}", n + 1
            named[name] = v
    return named


def _keras_parts(module: Any) -> list[tuple[str, Any]]:
    """(attribute path, Keras layer or model) of the Keras objects a tf.Module holds."""
    if "keras" not in __import__("sys").modules:
        return []
    import keras

    try:
        found = module._flatten(predicate=lambda v: isinstance(v, keras.Layer), with_path=True)
        return [("/".join(str(p) for p in path), layer) for path, layer in found]
    except (AttributeError, TypeError):
        return []


def keras_variables(model: Any) -> dict[str, Any]:
    """Keras variables by their `.weights.h5` path (``layers/dense_1/vars/0``).

    Keras derives these paths from layer classes and positions, not from layer names, so a
    rebuilt model (whose auto-generated names get ``_1`` suffixes) has the same ones. Variables
    Keras does not save (a Dropout's seed state) are left out: no format restores them.
    """
    try:
        from keras.src.saving import saving_lib

        store = saving_lib.NpzIOStore(None, mode="w")
        saving_lib._save_state(model, store, None, "", set())
        by_id = {
            id(v): ("" if path == "__root__" else f"{path}/") + f"vars/{key}"
            for path, entries in store.contents.items()
            for key, v in entries.items()
        }
    except Exception:  # private Keras API moved: names by path still work in one process
        return {v.path: v for v in model.variables}
    # Only what Keras itself saves (not a Dropout's seed state, not optimizer slots).
    return {by_id[id(v)]: v for v in model.variables if id(v) in by_id}


def tf_variable(v: Any) -> Any:
    """The `tf.Variable` behind a Keras 3 variable (or `v` itself)."""
    inner = getattr(v, "_value", None)
    return inner if inner is not None and hasattr(inner, "assign") else v


def read_values(model: Any) -> dict[str, np.ndarray]:
    """Current values of `variables(model)` as numpy copies."""
    named = variables(model)
    if isinstance(model, GraphModel):
        values = model.session.run(list(named.values())) if named else []
        return {k: np.array(v) for k, v in zip(named, values, strict=True)}
    return {k: np.array(v.numpy()) for k, v in named.items()}


def call_build(build: Callable[[], Any] | None, fmt: str, info: ModelInfo) -> Any:
    """Call the user's `build=` factory, or explain that this format needs one."""
    if build is None:
        raise TypeError(
            f"[{fmt}] holds only variables: pass build=<zero-argument callable returning a fresh "
            f"{info.detail} of the same architecture> to persist.check()/persist.restore()"
        )
    fresh = build()
    if fresh is None:
        raise TypeError(f"[{fmt}] build() returned None; it must return a fresh model")
    return fresh


# Moved to restore/perturb.py; still importable from here (tests/test_perturb.py imports them).
# Resolved lazily because restore.perturb itself imports this module.
_MOVED = {"SAMPLES", "Perturbation", "flip_mask", "perturb", "sample_indices", "unrestored"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from .restore import perturb as _perturb_module

        return getattr(_perturb_module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
