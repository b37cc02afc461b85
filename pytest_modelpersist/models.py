"""The three model kinds behind one small interface: describe, run, list variables, perturb.

* Keras 3 models (Sequential, Functional, subclassed),
* `tf.Module` objects whose `__call__` is a `tf.function` (ideally with an `input_signature`),
* TF1 graph models: a `tf.Graph` + `tf.compat.v1.Session`, named by :class:`GraphModel`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._tf import import_tensorflow

KERAS = "keras"
MODULE = "tf.Module"
GRAPH = "tf1-graph"
OTHER = "other"
KINDS = (KERAS, MODULE, GRAPH)

Inputs = Any  # an array, a sequence of arrays (positional inputs), or None for no inputs


@dataclass(frozen=True)
class ModelInfo:
    """What a model is: its family (one of KINDS) and a finer description for messages."""

    kind: str
    detail: str

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
        feeds = dict(zip(self.input_names, as_input_list(inputs), strict=True))
        return [np.asarray(v) for v in self.session.run(self.output_names, feed_dict=feeds)]


def as_input_list(inputs: Inputs) -> list[np.ndarray]:
    """Normalize inputs to a list of positional arrays (None -> no inputs)."""
    if inputs is None:
        return []
    if isinstance(inputs, Mapping):
        raise TypeError("pass inputs as an array or a list of arrays (positional), not a dict")
    if isinstance(inputs, (list, tuple)):
        return [np.asarray(x) for x in inputs]
    return [np.asarray(inputs)]


def as_output_list(outputs: Any) -> list[np.ndarray]:
    """Flatten a model's outputs (tensor, list, tuple or dict) to a list of numpy arrays.

    Dicts are ordered by key in natural order (output_2 before output_10), which is how
    SavedModel signatures name positional outputs.
    """
    if isinstance(outputs, Mapping):
        return [np.asarray(outputs[k]) for k in sorted(outputs, key=natural_key)]
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(o) for o in outputs]
    return [np.asarray(outputs)]


def natural_key(text: str) -> tuple[Any, ...]:
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text)))


def describe(model: Any) -> ModelInfo:
    """Classify `model` into one of KINDS, or OTHER for objects TensorFlow does not know."""
    if isinstance(model, GraphModel):
        return ModelInfo(GRAPH, "TF1 graph model (GraphModel)")
    if not _tf_loaded_or_model_from_tf(model):
        return ModelInfo(OTHER, f"{type(model).__module__}.{type(model).__name__} object")
    tf = import_tensorflow()
    import keras

    if isinstance(model, keras.Model):
        if isinstance(model, keras.Sequential):
            sub = "Sequential"
        elif getattr(model, "_is_graph_network", False) or type(model).__name__ == "Functional":
            sub = "Functional"
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


def run(model: Any, inputs: Inputs) -> list[np.ndarray]:
    """Run any model kind on `inputs`; returns its outputs as a list of numpy arrays."""
    args = as_input_list(inputs)
    if isinstance(model, GraphModel):
        return model(args)
    info = describe(model)
    if info.kind == KERAS:
        out = model(args if len(args) > 1 else args[0], training=False)
    elif callable(model):
        out = model(*args)
    else:
        raise TypeError(f"{info.detail} is not callable on inputs")
    return as_output_list(_to_numpy(out))


def _to_numpy(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _to_numpy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_numpy(v) for v in x]
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def input_specs(inputs: Inputs) -> list[Any]:
    """`tf.TensorSpec`s for positional inputs, with a free batch dimension."""
    tf = import_tensorflow()
    specs = []
    for i, x in enumerate(as_input_list(inputs)):
        shape = [None, *x.shape[1:]] if x.ndim else []
        specs.append(tf.TensorSpec(shape, tf.as_dtype(x.dtype), name=f"x{i}" if i else "x"))
    return specs


def concrete_function(model: Any, inputs: Inputs) -> Any:
    """A ConcreteFunction computing the model (Keras or tf.Module) on inputs like `inputs`."""
    tf = import_tensorflow()
    info = describe(model)
    if info.kind == MODULE:
        fn = model.__call__
        if hasattr(fn, "input_signature") and fn.input_signature is not None:
            return fn.get_concrete_function()
        if hasattr(fn, "get_concrete_function"):
            return fn.get_concrete_function(*input_specs(inputs))
        raise TypeError(f"{info}: __call__ must be a tf.function (with an input_signature)")
    specs = input_specs(inputs)

    @tf.function(input_signature=specs, autograph=False)
    def serve(*args: Any) -> Any:
        return model(list(args) if len(args) > 1 else args[0], training=False)

    return serve.get_concrete_function()


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

    Keras: the `.weights.h5` path (``layers/dense/vars/0``). tf.Module: the attribute path
    (``w``, ``dense/b``). TF1 graph: the variable op name (``v1``).
    """
    info = describe(model)
    if info.kind == GRAPH:
        return {v.op.name: v for v in model.graph_variables()}
    if info.kind == KERAS:
        return keras_variables(model)
    return module_variables(model)


def module_variables(module: Any) -> dict[str, Any]:
    """tf.Module variables by attribute path (``dense/w``), stable across rebuilt modules."""
    tf = import_tensorflow()
    named: dict[str, Any] = {}
    try:
        pairs = module._flatten(predicate=lambda v: isinstance(v, tf.Variable), with_path=True)
        for path, v in pairs:
            named.setdefault("/".join(str(p) for p in path), v)
    except (AttributeError, TypeError):  # fall back to variable names, made unique
        for v in module.variables:
            base = name = v.name.split(":")[0]
            n = 1
            while name in named:
                name, n = f"{base}_{n}", n + 1
            named[name] = v
    return named


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


def is_perturbable(value: np.ndarray) -> bool:
    return value.size > 0 and np.issubdtype(value.dtype, np.inexact)


def perturb(model: Any, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Add noise to every float variable so a restore that loads nothing is visible.

    Returns the perturbed values (name -> array) for :func:`unrestored`.
    """
    rng = np.random.default_rng(seed)
    current = read_values(model)
    named = variables(model)
    perturbed: dict[str, np.ndarray] = {}
    for name, value in current.items():
        if not is_perturbable(value):
            continue
        noise = rng.standard_normal(value.shape).astype(value.dtype) + np.asarray(0.5, value.dtype)
        perturbed[name] = (value + noise).astype(value.dtype)
    if isinstance(model, GraphModel):
        model.load_values([(named[n], v) for n, v in perturbed.items()])
    else:
        for name, value in perturbed.items():
            named[name].assign(value)
    return perturbed


def unrestored(model: Any, perturbed: Mapping[str, np.ndarray]) -> list[str]:
    """Names of variables that still hold exactly their perturbed value after a restore."""
    now = read_values(model)
    return [n for n, v in perturbed.items() if n in now and np.array_equal(now[n], v)]


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


@dataclass
class RestoreReport:
    """What a restore filled: restored, skipped on purpose, missing from file, unused in file.

    Names are the target's variable names (``layers/dense/vars/0``, ``w``, ``v1``) except
    `unused`, which names entries of the file. `notes` explain entries (closest names, why a
    variable was skipped). `strict=False` (the user's explicit choice) makes a restore with
    missing or mismatched variables acceptable; they are still listed.
    """

    restored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    strict: bool = True

    @property
    def everything_restored(self) -> bool:
        """True when no variable is missing and none mismatched, whatever `strict` says."""
        return not (self.missing or self.mismatched)

    @property
    def complete(self) -> bool:
        """True when the restore is acceptable: nothing missing or mismatched, or not strict."""
        return self.everything_restored or not self.strict

    def summary(self) -> str:
        parts = [f"restored {len(self.restored)}"]
        for label, names in (
            ("skipped", self.skipped),
            ("missing from the file", self.missing),
            ("in the file but unused", self.unused),
            ("shape/dtype mismatch", self.mismatched),
        ):
            if names:
                shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
                parts.append(f"{label} {len(names)}: {shown}")
        text = "; ".join(parts)
        if self.notes:
            shown_notes = self.notes[:8] + ([f"... {len(self.notes) - 8} more"]
                                             if len(self.notes) > 8 else [])
            text += "\n" + "\n".join(f"  {n}" for n in shown_notes)
        return text
