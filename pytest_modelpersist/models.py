"""The four model kinds behind one small interface: describe, run, list variables, perturb.

* Keras 3 models (Sequential, Functional, subclassed),
* Keras 2 models: `tf_keras`, and `tf.keras` on TensorFlow <= 2.15 (see compat.py),
* `tf.Module` objects whose `__call__` is a `tf.function` (ideally with an `input_signature`),
* TF1 graph models: a `tf.Graph` + `tf.compat.v1.Session`, named by :class:`GraphModel`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import compat
from ._tf import import_tensorflow

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


# ---- perturbing before a restore, and telling afterwards what the restore left alone ----------

#: Elements sampled per variable to tell whether a restore wrote it (first and last included).
SAMPLES = 64


def sample_indices(size: int, samples: int = SAMPLES) -> np.ndarray:
    """Up to `samples` flat indices spread evenly over `size` elements, first and last included."""
    if size <= samples:
        return np.arange(size, dtype=np.int64)
    return np.unique(np.linspace(0, size - 1, samples).round().astype(np.int64))


def _float_dtype(var: Any) -> Any:
    """The variable's TF dtype when it is floating or complex (perturbable), else None."""
    dtype = getattr(var.dtype, "base_dtype", var.dtype)
    return dtype if (dtype.is_floating or dtype.is_complex) else None


@functools.cache
def flip_mask(dtype: Any) -> tuple[Any, Any]:
    """(unsigned TF dtype of the same width, the bits the perturbation flips) of a float dtype.

    The sign bit and the highest mantissa bit (of each part, for complex): a normal x becomes -x
    times 1.25..1.5 or 0.67..0.75, 0 and subnormals become other (negative) subnormals. The
    exponent is left alone, so a finite value stays finite.
    """
    import ml_dtypes

    tf = import_tensorflow()
    part = dtype.real_dtype if dtype.is_complex else dtype
    bits = part.size * 8
    nmant = int(ml_dtypes.finfo(part.as_numpy_dtype).nmant)
    uint = {8: tf.uint8, 16: tf.uint16, 32: tf.uint32, 64: tf.uint64}[bits]
    return uint, np.array((1 << (bits - 1)) | (1 << (nmant - 1)), uint.as_numpy_dtype)


def _flipped(tf: Any, value: Any, dtype: Any) -> Any:
    """`value` with the bits of flip_mask flipped: a TF tensor of the same dtype and shape."""
    uint, mask = flip_mask(dtype)
    return tf.bitcast(tf.bitwise.bitwise_xor(tf.bitcast(value, uint), mask), dtype)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Exactly the same values, bit for bit (a NaN equals itself, 0.0 differs from -0.0)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


class Perturbation(Mapping[str, np.ndarray]):
    """The variables :func:`perturb` changed: name -> the sampled elements' perturbed values.

    It keeps what it needs to sample the same elements again after a restore
    (:func:`unrestored`), and nothing as large as a variable.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.marks: dict[str, np.ndarray] = {}
        self._eager: dict[str, tuple[Any, np.ndarray]] = {}  # name -> (tf.Variable, indices)
        self._graph: dict[str, Any] = {}  # name -> sample tensor of the model's graph

    def __getitem__(self, name: str) -> np.ndarray:
        return self.marks[name]

    def __iter__(self) -> Any:
        return iter(self.marks)

    def __len__(self) -> int:
        return len(self.marks)

    def samples(self) -> dict[str, np.ndarray]:
        """The sampled elements' current values (read again, now)."""
        if not self.marks:
            return {}
        if self._graph:
            names = list(self._graph)
            got = self.model.session.run([self._graph[n] for n in names])
            return {n: np.asarray(v) for n, v in zip(names, got, strict=True)}
        tf = import_tensorflow()
        return {n: np.asarray(tf.gather(tf.reshape(var, [-1]), idx).numpy())
                for n, (var, idx) in self._eager.items()}


def perturb(model: Any, *, named: Mapping[str, Any] | None = None,
            seed: int = 0) -> Perturbation:
    """Perturb every float variable so a restore that loads nothing is visible.

    `named` (name -> variable) limits it to those variables (default: all of
    ``variables(model)``); any other variable keeps its value exactly. Only floating (and
    complex) variables with at least one element are perturbed; int and bool ones stay as they
    are.

    Each perturbed element has its sign bit and its highest mantissa bit flipped (flip_mask),
    inside TensorFlow: one XOR pass over the variable, no numpy copy of it, no rounding. So
    every element changes, bit for bit and numerically, whatever its dtype (float16 and
    bfloat16 too) or value: x becomes about -1.5 x or -0.7 x (1e30 -> -1.5e30, 1 -> -1.5), 0
    becomes the dtype's tiny negative subnormal (float32: -5.9e-39), a finite value never
    becomes inf or NaN, and inf and NaN change bits too. Then up to SAMPLES elements per
    variable (spread evenly, first and last included) are read back and kept:
    :func:`unrestored` compares those samples only, bit for bit. `seed` is accepted for
    compatibility and unused: the perturbation is deterministic (and its own inverse: perturbing
    twice without a restore between gives back the original values).

    Residual risk: a restore that writes only elements outside the samples (a slice of a
    variable, say) is not caught by this check; the comparison of the restored model's outputs
    with the original's catches it, since every element was moved.
    """
    del seed
    tf = import_tensorflow()
    named = variables(model) if named is None else named
    result = Perturbation(model)
    if isinstance(model, GraphModel):
        chosen = {n: v for n, v in named.items() if _float_dtype(v) is not None}
        if chosen:
            _perturb_graph(tf, model, chosen, result)
        return result
    for name, v in named.items():
        var = tf_variable(v)
        dtype = _float_dtype(var)
        if dtype is None:
            continue
        shape = var.shape
        size = shape.num_elements() if shape.is_fully_defined() else int(tf.size(var))
        if not size:
            continue
        flipped = _flipped(tf, var.read_value(), dtype)
        var.assign(flipped, read_value=False)
        idx = sample_indices(size)
        result.marks[name] = np.asarray(tf.gather(tf.reshape(flipped, [-1]), idx).numpy())
        result._eager[name] = (var, idx)
    return result


def _perturb_graph(tf: Any, model: GraphModel, chosen: Mapping[str, Any],
                   result: Perturbation) -> None:
    """The same in a TF1 graph: ops built once, perturbing in one session run, sampling in one."""
    session = model.session
    with model.graph.as_default():
        unknown = [n for n, v in chosen.items() if not v.shape.is_fully_defined()]
        sizes = {n: v.shape.num_elements() for n, v in chosen.items() if n not in unknown}
        if unknown:
            got = session.run([tf.size(chosen[n]) for n in unknown])
            sizes.update({n: int(s) for n, s in zip(unknown, got, strict=True)})
        ops, reads = [], {}
        for name, var in chosen.items():
            if not sizes[name]:
                continue
            value = _flipped(tf, tf.identity(var), _float_dtype(var))
            ops.append(var.assign(value, read_value=False) if hasattr(var, "handle")
                       else tf.compat.v1.assign(var, value))
            reads[name] = tf.gather(tf.reshape(var, [-1]), sample_indices(sizes[name]))
        if not reads:
            return
        session.run(ops)
        got = session.run(list(reads.values()))
    result.marks.update({n: np.asarray(v) for n, v in zip(reads, got, strict=True)})
    result._graph.update(reads)


def unrestored(model: Any, perturbed: Mapping[str, np.ndarray]) -> list[str]:
    """Names of perturbed variables whose sampled elements all still hold their perturbed value.

    `perturbed` is what :func:`perturb` returned (a plain name -> full value mapping is compared
    whole). Only the SAMPLES sampled elements of each variable are read (see :func:`perturb`
    for what this cannot see).
    """
    if not isinstance(perturbed, Perturbation):
        now = read_values(model)
        return [n for n, v in perturbed.items()
                if n in now and _same_bits(now[n], np.asarray(v, now[n].dtype))]
    now = perturbed.samples()
    return [n for n, v in perturbed.marks.items() if _same_bits(now[n], v)]


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
