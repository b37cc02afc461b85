"""What the conversion formats (tflite, tflite_float16, tflite_dynamic, onnx) share.

A conversion does not persist the model: it writes another program that should compute the
same thing. So these formats

* trace the model into a *serving function* whose inputs and outputs carry explicit names
  (``x``, ``x1``, ... and ``output_0``, ``output_1``, ...), and record in the artifact's manifest
  which name is which positional input and which output path (``logits``, ``output_1``): a
  restore feeds and fetches by those names, never by the converted model's tensor order;
* declare a default tolerance per dtype (`ConversionFormat.tolerances`): a quantized model is
  not expected to match its float original to 1e-6, and the comparison says so when it fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..compare import Tolerance
from ..models import GRAPH, KERAS_KINDS, MODULE, Inputs, describe, input_specs, tf_variable
from .base import Artifact, BaseFormat


@dataclass
class Serving:
    """A model traced for conversion: the function, what holds its variables, the names.

    `inputs[i]` is the name of positional input i; `outputs[j]` the name of flat output j
    (``output_<j>``) and `paths[j]` its path in the model's own outputs (``logits``).
    """

    function: Any  # a ConcreteFunction returning {output name: tensor}
    traced: Any  # the tf.function it was traced from (tf2onnx converts that)
    trackable: Any  # a tf.Module holding every variable the function reads
    inputs: list[str]
    outputs: list[str]
    paths: list[str]

    io: dict[str, Any] | None = None  # the nest_tf.IOMap: how flat outputs pack into the nest

    def mapping(self) -> dict[str, Any]:
        """The manifest entry: positional inputs and flat outputs by name (and output path),
        and the io map (restores give the outputs back in the model's own structure)."""
        entry: dict[str, Any] = {
            "inputs": [{"position": i, "name": n} for i, n in enumerate(self.inputs)],
            "outputs": [{"position": j, "name": n, "path": p}
                        for j, (n, p) in enumerate(zip(self.outputs, self.paths, strict=True))],
        }
        if self.io is not None:
            entry["io"] = self.io
        return entry


def output_names(count: int) -> list[str]:
    return [f"output_{j}" for j in range(count)]


def serving_function(model: Any, inputs: Inputs) -> Serving:
    """Trace a Keras model or a tf.Module into a Serving with named inputs and outputs.

    The variables are held by a plain tf.Module handed to the converter as the trackable
    object: for a Keras 3 model the underlying `tf.Variable`s must be listed there, or the
    TFLite converter leaves them as uninitialized resource variables and the converted model
    computes garbage (seen with TF 2.21: outputs of 1e+34 from `from_concrete_functions`).
    """
    from .. import nest
    from .._tf import import_tensorflow
    from ..nest_tf import IOMap, IOSide, call_model

    tf = import_tensorflow()
    info = describe(model)
    specs = input_specs(inputs)
    if info.kind == MODULE:
        call = model.__call__
        fn_specs = getattr(call, "input_signature", None)
        if fn_specs:  # the module's own signature, renamed so feeds go by our names
            specs = [tf.TensorSpec(s.shape, s.dtype, name=specs[i].name if i < len(specs)
                                   else f"x{i}") for i, s in enumerate(fn_specs)]
    elif info.kind not in KERAS_KINDS:
        raise TypeError(f"{info.detail} cannot be traced into a serving function")
    names = [s.name for s in specs]
    paths: list[str] = []
    structure: list[Any] = []  # the outputs' structure, known once traced
    in_structure = nest.structure_of(inputs)

    def body(*args: Any) -> dict[str, Any]:
        # The model takes its own nest (a dict-input Keras model refuses a list).
        out = call_model(model, nest.pack(in_structure, list(args)),
                         keras_model=info.kind in KERAS_KINDS)
        leaves = nest.flatten(out)
        structure[:] = [nest.structure_of(out)]
        paths[:] = nest.leaf_paths(structure[0])
        return dict(zip(output_names(len(leaves)), leaves, strict=True))

    traced = tf.function(body, input_signature=specs, autograph=False)
    function = traced.get_concrete_function()
    holder = tf.Module()
    holder.tracked = [tf_variable(v) for v in model.variables]
    outputs = output_names(len(paths))
    in_paths = nest.leaf_paths(in_structure, nest.INPUT) if inputs is not None else []
    io = IOMap(IOSide(in_structure, in_paths, names), IOSide(structure[0], list(paths), outputs))
    return Serving(function, traced, holder, names, outputs, list(paths), io=io.to_json())


def graph_mapping(model: Any) -> dict[str, Any]:
    """The manifest entry of a TF1 graph model: its input and output tensors by name."""
    return {
        "inputs": [{"position": i, "name": n.split(":")[0]}
                   for i, n in enumerate(model.input_names)],
        "outputs": [{"position": j, "name": n.split(":")[0], "path": f"output_{j}"}
                    for j, n in enumerate(model.output_names)],
    }


def feeds(mapping: Mapping[str, Any], args: list[Any], where: str) -> dict[str, Any]:
    """Positional arrays -> {input name: array}, per the manifest's mapping."""
    names = [e["name"] for e in sorted(mapping["inputs"], key=lambda e: e["position"])]
    if len(args) != len(names):
        raise ValueError(f"{where} takes {len(names)} input(s) ({', '.join(names) or 'none'}), "
                         f"got {len(args)}")
    return dict(zip(names, args, strict=True))


def fetch_order(mapping: Mapping[str, Any]) -> list[str]:
    """Output names in the order the original model returns its flat outputs."""
    return [e["name"] for e in sorted(mapping["outputs"], key=lambda e: e["position"])]


class ConversionFormat(BaseFormat):
    """Defaults of the conversion formats: what they hold, and the tolerances their artifacts
    declare (the plugin reads them from the artifact, whichever loader restores it)."""

    kinds: ClassVar[frozenset[str]] = frozenset({*KERAS_KINDS, MODULE, GRAPH})
    #: Default tolerance per dtype for this format's outputs (dtypes not listed: the
    #: plugin's defaults). Explicit rtol/atol (call, marker) replace them.
    tolerances: ClassVar[Mapping[str, Tolerance]] = {}
    #: What the conversion does to numbers, for messages ("int8 weights, dynamic range").
    precision: ClassVar[str] = "float32"

    def converted(self, directory: Path, main: str, model: Any, example: Inputs, /,
                  **meta: Any) -> Artifact:
        """The artifact of a conversion (meta: the name mapping, converter facts), declaring
        its tolerances and precision."""
        declared = {k: [t.rtol, t.atol] for k, t in self.tolerances.items()}
        return self.new_artifact(directory, main, describe(model), example,
                                 tolerances=declared, precision=self.precision, **meta)


def declared_tolerances(artifact: Artifact) -> dict[str, Tolerance]:
    """The default tolerances an artifact declares (a conversion's), by dtype; {} for others."""
    found = artifact.meta.get("tolerances") or {}
    return {dtype: Tolerance(float(pair[0]), float(pair[1])) for dtype, pair in found.items()}


def lossy_hint(artifact: Artifact, options: Any) -> str:
    """Why a converted artifact's mismatch may be the tolerance asked for, not the conversion
    ('' for an artifact that declares no tolerance). `options`: the check's CheckOptions."""
    default = declared_tolerances(artifact).get("float32")
    if default is None:
        return ""
    asked = ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v!r}"
                      for k, v in (("rtol", options.rtol), ("atol", options.atol))
                      if v is not None)
    text = (f"{artifact.format} converts the model to {artifact.meta.get('precision')}; its "
            f"default float32 tolerance is {default}")
    if asked:
        text += (f", and this check asked for {asked}: a lossy conversion compared at "
                 "float tolerances fails by design. Drop the explicit tolerance, or")
        if not options.decision:
            text += (" compare decisions: @pytest.mark.persist(agreement='argmax') or "
                     "max_mismatch_fraction=... (README, Tolerances)")
        else:
            text += " loosen the decision options"
    return text + "."
