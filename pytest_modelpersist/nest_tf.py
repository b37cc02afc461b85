"""The nested I/O contract on TensorFlow's side: calling models on nests, serving functions.

A traced format (SavedModel, frozen pb, the ckpt format's TF1 graph) needs a function of flat
tensors. :func:`serving_function` builds one around any model kind: its arguments are the
input nest's leaves, in flatten order, each named after its path (``token_ids``, ``input_1``);
it packs them back into the nest the model takes, calls the model, and returns the outputs'
leaves as a dict keyed by their sanitized paths. The :class:`IOMap` it returns says which
argument, output key and (once a format knows them) tensor each PATH is, so a restore never
relies on the order TensorFlow sorts names in. It is stored in the artifact's manifest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import nest
from ._tf import import_tensorflow


@dataclass
class IOSide:
    """One side (inputs or outputs) of a traced model: structure, paths, names per path."""

    structure: dict[str, Any]
    paths: list[str]
    names: list[str]  # signature argument names / output keys, one per path
    tensors: list[str] = field(default_factory=list)  # graph tensor names, once known

    def to_json(self) -> dict[str, Any]:
        return {"structure": self.structure, "paths": self.paths, "names": self.names,
                "tensors": self.tensors}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> IOSide:
        return cls(dict(doc["structure"]), list(doc["paths"]), list(doc["names"]),
                   list(doc.get("tensors", [])))


@dataclass
class IOMap:
    """Both sides; ``artifact.meta["io"]`` holds :meth:`to_json`."""

    inputs: IOSide
    outputs: IOSide

    def to_json(self) -> dict[str, Any]:
        return {"inputs": self.inputs.to_json(), "outputs": self.outputs.to_json()}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> IOMap | None:
        """The map an artifact's manifest holds, or None (an artifact of an older version)."""
        doc = meta.get("io")
        if not doc:
            return None
        return cls(IOSide.from_json(doc["inputs"]), IOSide.from_json(doc["outputs"]))


def safe_names(paths: Sequence[str]) -> list[str]:
    """Signature-safe, unique names for paths (``heads/1/score`` -> ``heads_1_score``)."""
    out: list[str] = []
    for p in paths:
        base = re.sub(r"[^A-Za-z0-9_]", "_", p) or "x"
        if not re.match(r"[A-Za-z]", base):
            base = "x_" + base
        name, n = base, 1
        while name in out:
            name, n = f"{base}_{n}", n + 1
        out.append(name)
    return out


def as_tensor_leaf(value: Any) -> Any:
    """A leaf ready to feed: numpy strings become tf.string tensors, the rest stays as is."""
    arr = value if hasattr(value, "dtype") else np.asarray(value)
    if getattr(arr, "dtype", None) is not None and np.dtype(arr.dtype).kind in "SUO":
        return import_tensorflow().constant(arr)
    return value


def feedable(inputs: Any) -> Any:
    """`inputs` with string leaves as tf.string tensors (Keras refuses numpy str arrays).

    When one leaf becomes a tensor, every leaf does: Keras refuses a nest that mixes tensors
    and arrays ("you cannot mix tensors and non-tensors").
    """
    if inputs is None:
        return None
    structure = nest.structure_of(inputs)
    leaves = nest.flatten(inputs)
    fed = [as_tensor_leaf(v) for v in leaves]
    if any(f is not v for f, v in zip(fed, leaves, strict=True)):
        tf = import_tensorflow()
        fed = [f if tf.is_tensor(f) else tf.constant(nest.as_array(f)) for f in fed]
    return nest.pack(structure, fed)


def call_model(model: Any, inputs: Any, *, keras_model: bool) -> Any:
    """Call any model kind on the nest `inputs` (eagerly or while tracing).

    Keras models take the nest itself (a one-element list is unwrapped, as for a single-input
    model); other callables take a list or tuple as positional arguments and a dict as keyword
    arguments (:func:`nest.call_args`).
    """
    if keras_model:
        if isinstance(inputs, (list, tuple)) and len(inputs) == 1 and not nest._is_namedtuple(
                inputs):
            inputs = inputs[0]
        return model(inputs, training=False)
    args, kwargs = nest.call_args(inputs)
    return model(*args, **kwargs)


def symbolic(outputs: Any) -> Any:
    """TF outputs with SparseTensor/RaggedTensor as nest.Sparse/Ragged (graph-safe)."""
    tf = import_tensorflow()
    if isinstance(outputs, tf.SparseTensor):
        return nest.Sparse(outputs.indices, outputs.values, outputs.dense_shape)
    if isinstance(outputs, tf.RaggedTensor):
        return nest.Ragged(outputs.flat_values, tuple(outputs.nested_row_splits))
    if isinstance(outputs, Mapping):
        return {k: symbolic(outputs[k]) for k in nest.sorted_keys(outputs)}
    if nest._is_namedtuple(outputs) and not isinstance(outputs, (nest.Sparse, nest.Ragged)):
        return type(outputs)(*(symbolic(v) for v in outputs))
    if isinstance(outputs, (list, tuple)) and not isinstance(outputs, (nest.Sparse, nest.Ragged)):
        items = [symbolic(v) for v in outputs]
        return tuple(items) if isinstance(outputs, tuple) else items
    return outputs


def input_specs(inputs: Any, own: Sequence[Any] | None = None,
                names: Sequence[str] | None = None) -> list[Any]:
    """One named `tf.TensorSpec` per input leaf (flatten order), with a free batch dimension.

    `own` (a tf.Module's own input_signature, flattened) gives shapes and dtypes when it has
    one spec per leaf; `names` (a Keras model's input names) name positional leaves.
    """
    tf = import_tensorflow()
    leaves = [nest.as_array(v) for v in nest.flatten(inputs)]
    paths = nest.leaf_paths(inputs, nest.INPUT) if inputs is not None else []
    if names is not None and len(names) == len(paths) and not isinstance(inputs, Mapping):
        paths = list(names)
    # Positional inputs keep the names graphs always had here: x, x1, x2 ...
    names = safe_names([re.sub(r"^input_(\d+)", lambda m: "x" + (m.group(1).strip("0") and
                                                                  m.group(1)), p)
                        for p in paths])
    if own is not None and len(own) == len(leaves):
        # A module's own signature names its arguments for its clients: keep those names.
        own_names: list[Any] = [getattr(s, "name", None) for s in own]
        if all(own_names) and not isinstance(inputs, Mapping):
            names = safe_names(own_names)
        return [tf.TensorSpec(s.shape, s.dtype, name=n) for s, n in zip(own, names, strict=True)]
    specs = []
    for x, name in zip(leaves, names, strict=True):
        shape = [None, *x.shape[1:]] if x.ndim else []
        dtype = tf.string if x.dtype.kind in "SUO" else tf.as_dtype(x.dtype)
        specs.append(tf.TensorSpec(shape, dtype, name=name))
    return specs


def _keras_input_names(model: Any) -> list[str] | None:
    try:
        found: list[Any] = [getattr(t, "name", None) for t in model.inputs or []]
    except (AttributeError, ValueError):  # a subclassed model has no symbolic inputs
        return None
    # Names Keras made up (keras_tensor_12, input_layer_3) change from run to run: x, x1 ...
    made_up = re.compile(r"(keras_tensor|input_layer|input)(_\d+)?$")
    if not found or not all(isinstance(n, str) and n and not made_up.match(n) for n in found):
        return None
    return found


def _own_signature(model: Any) -> list[Any] | None:
    signature = getattr(model.__call__, "input_signature", None)
    if signature is None:
        return None
    return list(import_tensorflow().nest.flatten(signature))


class Serving:
    """A serving function of flat named inputs returning ``{output key: tensor}``.

    `fn` is the Python function, `specs` its input signature; :meth:`io` is the map, known
    once the function has been traced (its output side comes from the trace).
    """

    def __init__(self, model: Any, inputs: Any, *, keras_model: bool) -> None:
        self.model, self.keras_model = model, keras_model
        self.in_structure = nest.structure_of(inputs)
        # A Keras model's positional inputs are named as model.export() names them: by their
        # Input layers' names.
        self.specs = input_specs(inputs, None if keras_model else _own_signature(model),
                                 _keras_input_names(model) if keras_model else None)
        in_paths = nest.leaf_paths(self.in_structure, nest.INPUT) if inputs is not None else []
        self.inputs = IOSide(self.in_structure, in_paths, [s.name for s in self.specs])
        self.outputs: IOSide | None = None

    def fn(self, *args: Any) -> dict[str, Any]:
        packed = nest.pack(self.in_structure, list(args))
        out = symbolic(call_model(self.model, packed, keras_model=self.keras_model))
        paths = nest.leaf_paths(out)
        keys = safe_names(paths)
        self.outputs = IOSide(nest.structure_of(out), paths, keys)
        return dict(zip(keys, nest.flatten(out), strict=True))

    def concrete(self) -> Any:
        tf = import_tensorflow()
        return tf.function(self.fn, input_signature=self.specs,
                           autograph=False).get_concrete_function()

    def io(self) -> IOMap:
        if self.outputs is None:
            raise RuntimeError("the serving function has not been traced yet")
        return IOMap(self.inputs, self.outputs)


def serving_function(model: Any, inputs: Any, *, keras_model: bool) -> tuple[Any, IOMap]:
    """A ConcreteFunction of flat named inputs returning ``{output key: tensor}``, and its map.

    The model is called on the nest `inputs` has (see :func:`call_model`); the output keys are
    the output paths made signature-safe.
    """
    serving = Serving(model, inputs, keras_model=keras_model)
    concrete = serving.concrete()
    return concrete, serving.io()


def tensors_by_path(io: IOMap, flat: Sequence[Any]) -> list[Any]:
    """`flat` (a function's outputs in TF's flatten order of the output dict) per output path.

    The order is TensorFlow's own flatten of the dict the serving function returned, asked of
    tf.nest, not assumed.
    """
    order = import_tensorflow().nest.flatten({k: k for k in io.outputs.names})
    by_key = dict(zip(order, flat, strict=True))
    return [by_key[k] for k in io.outputs.names]


def serving(model: Any, inputs: Any) -> tuple[Any, IOMap]:
    """(ConcreteFunction, IOMap) of any model kind but a graph on inputs like `inputs`."""
    from .models import KERAS_KINDS, MODULE, describe

    info = describe(model)
    if info.kind == MODULE and not hasattr(model.__call__, "get_concrete_function"):
        raise TypeError(f"{info}: __call__ must be a tf.function (with an input_signature)")
    return serving_function(model, inputs, keras_model=info.kind in KERAS_KINDS)


def graph_io(model: Any) -> IOMap:
    """The io map of a TF1 graph model: its inputs and outputs as flat lists, in order."""
    def side(tensors: Sequence[str], prefix: str, names: list[str]) -> IOSide:
        structure = {"type": "list", "items": [{"type": "leaf"} for _ in tensors]}
        paths = [f"{prefix}_{i}" for i in range(len(tensors))]
        return IOSide(structure, paths, names, list(tensors))

    ins, outs = model.input_names, model.output_names
    return IOMap(side(ins, "input", safe_names([t.split(":")[0] for t in ins])),
                 side(outs, "output", [f"output_{i}" for i in range(len(outs))]))


def keras2_signature_order(model: Any) -> dict[str, list[str]]:
    """The order a Keras 2 model's own SavedModel signature lists its flat inputs and outputs
    (by layer: ``input_names``, ``output_names``), as artifact meta (see models.signature_order).
    """
    return {"signature_inputs": list(getattr(model, "input_names", None) or []),
            "signature_outputs": list(getattr(model, "output_names", None) or [])}


def keras2_signature_io(model: Any, inputs: Any, path: Any) -> IOMap | None:
    """The io map of a Keras 2 model's own SavedModel at `path` (``model.save(dir)``).

    Keras 2's serving signature is flat: one argument per input, one output key per output
    leaf in flatten order, each named after its layer (``keras.saving.legacy.saving_utils.
    trace_model_call``). Returns None when the keys do not line up one per leaf (the restore
    then falls back to the order by layer, flat).
    """
    from .loaders.capi import savedmodel_signature
    from .models import signature_order

    sig_in, sig_out = savedmodel_signature(path, "serving_default")
    order = keras2_signature_order(model)
    out = nest.to_numpy(call_model(model, feedable(inputs), keras_model=True))
    in_structure = nest.structure_of(inputs)
    in_paths = nest.leaf_paths(in_structure, nest.INPUT) if inputs is not None else []
    out_paths = nest.leaf_paths(out)
    if len(in_paths) != len(sig_in) or len(out_paths) != len(sig_out):
        return None
    return IOMap(IOSide(in_structure, in_paths, signature_order(sig_in, order, "inputs")),
                 IOSide(nest.structure_of(out), out_paths,
                        signature_order(sig_out, order, "outputs")))
