"""`tflite`, `tflite_float16`, `tflite_dynamic`: the model converted to TensorFlow Lite.

Keras models and tf.Modules are traced into a serving function with named inputs and outputs
(conversion.serving_function) and converted with ``TFLiteConverter.from_concrete_functions``;
the model runs through its ``serving_default`` signature runner, fed and fetched by those names.
TF1 graph models are converted from their session (``from_session``); that model has no
signature, so it runs by tensor name (``x``, ``score``). Either way the artifact's manifest
records which name is which input and output.

The interpreter is LiteRT's (``ai_edge_litert``) when it is installed, else
``tf.lite.Interpreter`` (deprecated in favour of LiteRT, still shipped with TF 2.21).

The variants are post-training quantizations: `tflite_float16` stores float16 weights,
`tflite_dynamic` int8 weights with activations quantized on the fly (dynamic range). TFLite
leaves weights of fewer than 1024 elements in float, so a small model may not change at all.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..compare import Tolerance
from ..models import GraphModel, Inputs
from ..restore.options import RestoreOptions
from .base import Artifact, Restored, pack_outputs
from .conversion import ConversionFormat, feeds, fetch_order, graph_mapping, serving_function

SIGNATURE = "serving_default"
MAIN = "model.tflite"


class TFLiteFormat(ConversionFormat):
    name = "tflite"
    description = "TensorFlow Lite flatbuffer (float32), run by signature by the TFLite interpreter"
    precision = "TensorFlow Lite (float32 kernels)"
    #: TFLite's float kernels (XNNPACK) reorder sums and fuse activations: float32 outputs
    #: differ from TensorFlow's in the last bits, more for deep or wide models.
    tolerances: ClassVar[dict[str, Tolerance]] = {"float32": Tolerance(rtol=1e-4, atol=1e-5)}
    quantization: ClassVar[str | None] = None
    #: Marker/ini ``convert={"select_tf_ops": True}``: the SELECT_TF_OPS fallback.
    save_options: ClassVar[dict[str, type]] = {"select_tf_ops": bool}

    def save(self, model: Any, directory: Path, *, inputs: Inputs,
             select_tf_ops: bool = False) -> Artifact:
        """Convert `model` and write ``model.tflite``; `select_tf_ops` lets the converter keep
        TensorFlow ops that have no TFLite kernel (the Flex delegate runs them)."""
        if isinstance(model, GraphModel):
            converter = self._graph_converter(model)
            mapping, signature = graph_mapping(model), None
        else:
            import tensorflow as tf

            serving = serving_function(model, inputs)
            converter = tf.lite.TFLiteConverter.from_concrete_functions(
                [serving.function], serving.trackable)
            mapping, signature = serving.mapping(), SIGNATURE
        self._configure(converter, select_tf_ops)
        blob = convert(converter, self.name, select_tf_ops)
        (directory / MAIN).write_bytes(blob)
        return self.converted(directory, MAIN, model, inputs, signature=signature,
                              quantization=self.quantization, select_tf_ops=select_tf_ops,
                              **mapping)

    @staticmethod
    def _graph_converter(model: GraphModel) -> Any:
        import tensorflow as tf

        graph = model.graph
        return tf.compat.v1.lite.TFLiteConverter.from_session(
            model.session, [graph.get_tensor_by_name(n) for n in model.input_names],
            [graph.get_tensor_by_name(n) for n in model.output_names])

    def _configure(self, converter: Any, select_tf_ops: bool) -> None:
        import tensorflow as tf

        if select_tf_ops:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                                   tf.lite.OpsSet.SELECT_TF_OPS]
        if self.quantization is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if self.quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]

    def restore(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        """An interpreter over the artifact's flatbuffer, fed and fetched by the manifest's
        names. `build` is not needed (the file is the whole model) and is ignored."""
        interpreter, how = make_interpreter(artifact.path)
        where = f"[{self.name}] {artifact.path}"
        meta = artifact.meta
        names = fetch_order(meta)

        def runner(args: list[np.ndarray]) -> list[np.ndarray]:
            fed = feeds(meta, args, where)
            try:
                if meta.get("signature"):
                    out = interpreter.get_signature_runner(meta["signature"])(**fed)
                    return pack_outputs(artifact, [np.array(out[n]) for n in names])
                return pack_outputs(artifact, run_by_tensor_name(interpreter, fed, names))
            except RuntimeError as exc:
                flex = re.findall(r"\((Flex\w+)\)", str(exc))
                if not flex:
                    raise
                raise RuntimeError(
                    f"{where} runs TensorFlow ops through the Flex delegate ({', '.join(flex)}),"
                    f" which {how} does not link: run it where the Flex delegate is linked "
                    "(an app with tensorflow-lite-select-tf-ops), or keep the model to TFLite "
                    "builtins") from None

        return Restored(artifact, interpreter, runner, how=how,
                        intermediates=lambda args: all_tensors(artifact.path, meta, args))


class TFLiteFloat16Format(TFLiteFormat):
    name = "tflite_float16"
    description = "TensorFlow Lite with float16 weights (post-training float16 quantization)"
    precision = "float16 weights"
    #: float16 keeps 11 significant bits: about 1e-3 relative per weight, more after sums
    #: (measured: 8e-4 max abs on outputs of order 1; atol is for outputs of that order).
    tolerances: ClassVar[dict[str, Tolerance]] = {"float32": Tolerance(rtol=1e-2, atol=5e-3)}
    quantization = "float16"


class TFLiteDynamicFormat(TFLiteFormat):
    name = "tflite_dynamic"
    description = ("TensorFlow Lite with int8 weights, activations quantized at run time "
                   "(post-training dynamic range quantization)")
    precision = "int8 weights with dynamic-range activations"
    #: int8 keeps 256 levels per tensor (or channel): errors of a few percent of the
    #: activation range are expected (measured: 1.8e-2 max abs on outputs of order 1, argmax
    #: unchanged); compare decisions for a stricter meaning.
    tolerances: ClassVar[dict[str, Tolerance]] = {"float32": Tolerance(rtol=5e-2, atol=5e-2)}
    quantization = "dynamic"


def convert(converter: Any, fmt: str, select_tf_ops: bool) -> bytes:
    """Run the converter; a failure names the ops it could not convert and the way out."""
    try:
        return bytes(converter.convert())
    except Exception as exc:
        kind = type(exc).__name__
        if kind != "ConverterError":
            raise
        text = str(exc)
        hint = ("" if select_tf_ops else
                " To keep TensorFlow ops that have no TFLite kernel, convert with "
                "select_tf_ops=True (the Flex delegate then runs them).")
        ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither", text)))
        found = f" ops it could not convert: {', '.join(ops)};" if ops else ""
        raise ValueError(f"[{fmt}] the TFLite converter failed:{found} "
                         f"{converter_words(text)[:400]}{hint}") from None


def converter_words(text: str) -> str:
    """The converter's own sentences from its error text, without the MLIR around them.

    The text holds, per op, a location (a call stack of every Python frame, thousands of
    characters under pytest) before ``error: <what>``, then dumps of the MLIR function; the
    sentences are each ``error:``'s tail and the "Some ops are not supported ..." summary.
    """
    said = []
    for line in (ln.strip() for ln in text.splitlines()):
        if "error:" in line:
            said.append(line.split("error:", 1)[1].strip())
        elif line.startswith("Some ops are not supported"):
            said.append(line)
    said = [s for s in dict.fromkeys(said) if s and not s.startswith("failed while converting")]
    if said:
        return "; ".join(said)
    return next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")


@contextlib.contextmanager
def _quiet_deprecation() -> Iterator[None]:
    with warnings.catch_warnings():
        # TF 2.21 warns that tf.lite.Interpreter moves to LiteRT; it is the fallback here.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        # Preserving all tensors is what divergence asks for, on purpose.
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        yield


def make_interpreter(path: Path, *, preserve_all_tensors: bool = False) -> tuple[Any, str]:
    """(interpreter, how it runs) for a .tflite file: LiteRT's when installed, else TF's."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        how = "the LiteRT interpreter (ai_edge_litert)"
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806 (a class)
        how = "tf.lite.Interpreter (ai_edge_litert is not installed)"
    with _quiet_deprecation():
        interpreter = Interpreter(model_path=str(path),
                                  experimental_preserve_all_tensors=preserve_all_tensors)
    return interpreter, how


def run_by_tensor_name(interpreter: Any, fed: dict[str, np.ndarray],
                       names: list[str]) -> list[np.ndarray]:
    """Run a signature-less model: resize and set inputs by tensor name, fetch by name."""
    ins = {d["name"]: d for d in interpreter.get_input_details()}
    outs = {d["name"]: d for d in interpreter.get_output_details()}
    missing = [n for n in [*fed, *names] if n not in ins and n not in outs]
    if missing:
        raise KeyError(f"the model has no tensor(s) {', '.join(missing)} (inputs: "
                       f"{', '.join(ins)}; outputs: {', '.join(outs)})")
    for name, value in fed.items():
        interpreter.resize_tensor_input(ins[name]["index"], np.shape(value))
    interpreter.allocate_tensors()
    for name, value in fed.items():
        interpreter.set_tensor(ins[name]["index"], np.asarray(value, ins[name]["dtype"]))
    interpreter.invoke()
    return [np.array(interpreter.get_tensor(outs[n]["index"])) for n in names]


def all_tensors(path: Path, meta: dict[str, Any], args: list[np.ndarray]) -> dict[str, Any]:
    """Every tensor of the model after one run on `args`, by tensor name (for divergence).

    Runs with ``experimental_preserve_all_tensors=True``, so intermediate buffers are not
    reused. Tensors that hold no value (variable handles, freed scratch) are left out.
    """
    interpreter, _ = make_interpreter(path, preserve_all_tensors=True)
    fed = feeds(meta, args, str(path))
    if meta.get("signature"):
        interpreter.get_signature_runner(meta["signature"])(**fed)
    else:
        run_by_tensor_name(interpreter, fed, fetch_order(meta))
    found: dict[str, Any] = {}
    for detail in interpreter.get_tensor_details():
        try:
            found[detail["name"]] = np.array(interpreter.get_tensor(detail["index"]))
        except ValueError:  # no data (a resource handle, an unallocated tensor)
            continue
    return found
