"""`onnx`: the model converted to ONNX with tf2onnx, checked with onnx.checker, run by ONNX Runtime.

An optional extra: ``pip install 'pytest-modelpersist[onnx]'`` (tf2onnx, onnxruntime). Without
it, ``onnx`` items are skipped with that command.

Keras models and tf.Modules are converted from the same named serving function as TFLite
(``tf2onnx.convert.from_function``): ONNX inputs ``x``, ``x1``..., outputs ``output_0``...
TF1 graph models are frozen first and converted from the GraphDef; their ONNX tensors keep the
TensorFlow names (``x:0``, ``score:0``). The manifest records the mapping either way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..compare import Tolerance
from ..models import GraphModel, Inputs, ModelInfo
from ..restore.options import RestoreOptions
from .base import Artifact, Restored, pack_outputs
from .conversion import ConversionFormat, feeds, fetch_order, serving_function

MAIN = "model.onnx"
EXTRA = ("tf2onnx", "onnxruntime", "onnx")
INSTALL = "pip install 'pytest-modelpersist[onnx]'"


def missing_modules() -> list[str]:
    """The extra's modules that cannot be found (none imported)."""
    return [m for m in EXTRA if not _findable(m)]


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # sys.modules[module] is None: imports of it are blocked on purpose
        return False


class OnnxFormat(ConversionFormat):
    name = "onnx"
    description = "ONNX graph (tf2onnx), checked with onnx.checker, run by ONNX Runtime on CPU"
    precision = "ONNX (float32 kernels of ONNX Runtime)"
    #: ONNX Runtime's CPU kernels (MLAS) sum in another order than TensorFlow's (Eigen/oneDNN).
    tolerances: ClassVar[dict[str, Tolerance]] = {"float32": Tolerance(rtol=1e-4, atol=1e-5)}
    #: Marker/ini ``convert={"opset": 13}``: the ONNX opset (tf2onnx's default when not given).
    save_options: ClassVar[dict[str, type]] = {"opset": int}

    def unsupported(self, model: Any, info: ModelInfo) -> str | None:
        missing = missing_modules()
        if missing:
            return f"the onnx extra is not installed (no {', '.join(missing)}): {INSTALL}"
        return super().unsupported(model, info)

    def save(self, model: Any, directory: Path, *, inputs: Inputs, opset: int | None = None,
             **converter_options: Any) -> Artifact:
        """Convert `model` with tf2onnx (`opset`, other keywords go to tf2onnx's convert
        function), check it with onnx.checker, write ``model.onnx``."""
        import onnx
        import tf2onnx

        if isinstance(model, GraphModel):
            proto, mapping = self._convert_graph(model, opset, converter_options)
        else:
            serving = serving_function(model, inputs)
            proto, _ = tf2onnx.convert.from_function(
                serving.traced, input_signature=serving.function.structured_input_signature[0],
                opset=opset, **converter_options)
            mapping = serving.mapping()
        onnx.checker.check_model(proto)
        graph_in = [i.name for i in proto.graph.input]
        graph_out = [o.name for o in proto.graph.output]
        want_in = [e["name"] for e in mapping["inputs"]]
        want_out = [e["name"] for e in mapping["outputs"]]
        lost = [n for n in want_in if n not in graph_in] + [n for n in want_out
                                                            if n not in graph_out]
        if lost:
            raise ValueError(f"[{self.name}] the converted graph lost tensor(s) {', '.join(lost)}"
                             f" (it has inputs {graph_in}, outputs {graph_out})")
        (directory / MAIN).write_bytes(proto.SerializeToString())
        opsets = {d.domain or "ai.onnx": d.version for d in proto.opset_import}
        return self.converted(directory, MAIN, model, inputs, opset=opsets,
                              tf2onnx=tf2onnx.__version__, **mapping)

    @staticmethod
    def _convert_graph(model: GraphModel, opset: int | None,
                       converter_options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        import tf2onnx

        from .pb import freeze_session

        frozen = freeze_session(model.session, model.output_names,
                                input_names=model.input_names)
        proto, _ = tf2onnx.convert.from_graph_def(
            frozen.graph_def, input_names=list(model.input_names),
            output_names=list(model.output_names), opset=opset, **converter_options)
        mapping = {
            "inputs": [{"position": i, "name": n} for i, n in enumerate(model.input_names)],
            "outputs": [{"position": j, "name": n, "path": f"output_{j}"}
                        for j, n in enumerate(model.output_names)],
        }
        return proto, mapping

    def restore(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        """An ONNX Runtime session over the file (CPU), fed and fetched by the manifest's
        names. With `safe_mode`, a model whose tensors point at external data files outside
        the artifact's directory is refused before ONNX Runtime reads them."""
        missing = missing_modules()
        if missing:
            raise ModuleNotFoundError(f"[{self.name}] the onnx extra is not installed "
                                      f"(no {', '.join(missing)}): {INSTALL}")
        import onnxruntime as ort

        if options.safe_mode:
            refuse_outside_data(artifact.path)
        session = ort.InferenceSession(str(artifact.path), providers=["CPUExecutionProvider"])
        where = f"[{self.name}] {artifact.path}"
        meta = artifact.meta
        names = fetch_order(meta)

        def runner(args: list[np.ndarray]) -> list[np.ndarray]:
            fed = {k: np.asarray(v) for k, v in feeds(meta, args, where).items()}
            return pack_outputs(artifact, [np.asarray(o) for o in session.run(names, fed)])

        return Restored(artifact, session, runner,
                        how=f"ONNX Runtime {ort.__version__} (CPUExecutionProvider)")


def refuse_outside_data(path: Path) -> None:
    """Raise PermissionError when a tensor of the ONNX file at `path` keeps its data in a file
    outside the file's directory (``location: ../../secret``)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    base = path.parent.resolve()
    tensors = list(model.graph.initializer) + [
        a.t for node in model.graph.node for a in node.attribute if a.HasField("t")]
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        target = (base / location).resolve()
        if base != target and base not in target.parents:
            raise PermissionError(
                f"{path}: tensor {tensor.name!r} reads its data from {location!r}, outside the "
                "model's directory; refused. If you trust this file, opt in for this test "
                "only: @pytest.mark.persist(unsafe=True)")
