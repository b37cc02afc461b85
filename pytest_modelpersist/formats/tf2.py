"""`tf_checkpoint` (object-based `tf.train.Checkpoint`) and `savedmodel`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._session_run import function_call
from .._tf import import_tensorflow
from ..errors import ArtifactError, first_lines
from ..models import (
    GRAPH,
    KERAS,
    KERAS2,
    MODULE,
    GraphModel,
    Inputs,
    RestoreReport,
    concrete_function,
    describe,
    input_specs,
    run,
    signature_order,
)
from ..restore.options import INTO_MODEL, RestoreOptions, needs_target
from ..restoring import (
    SavedVariables,
    checkpoint_variables,
    plan_restore,
    restore_into_rebuilt,
    restore_variables,
    target_variables,
)
from .base import CAPI_SAVED_MODEL, Artifact, BaseFormat, Restored
from .containment import check_checkpoint
from .pb.saved import screen_saved_model


class TFCheckpointFormat(BaseFormat):
    name = "tf_checkpoint"
    kinds = frozenset({KERAS, KERAS2, MODULE})
    description = ("TF2 object-graph checkpoint (tf.train.Checkpoint; Keras 2: save_weights), "
                   "read into a rebuilt model")
    needs_build = True
    restore_options = INTO_MODEL

    def unsupported(self, model: Any, info: Any) -> str | None:
        if info.kind == GRAPH:
            return ("tf_checkpoint saves trackable objects and a TF1 graph model has none "
                    "(its variables go through the ckpt format)")
        return super().unsupported(model, info)

    def save(self, model: Any, directory: Path, *, inputs: Inputs) -> Artifact:
        tf = import_tensorflow()
        info = describe(model)
        if info.kind == KERAS2:  # Keras 2's own TF-format weights: the model is the root
            prefix = str(directory / "ckpt")
            model.save_weights(prefix)
        else:
            prefix = tf.train.Checkpoint(model=model).write(str(directory / "ckpt"))
        return self.new_artifact(directory, Path(prefix).name, info, inputs,
                                 prefix=Path(prefix).name)

    @staticmethod
    def _root(artifact: Artifact) -> str:
        """The model's name in the checkpoint's object graph ("": the model is the root)."""
        return "" if artifact.model_kind == KERAS2 else "model"

    @staticmethod
    def _read(target: Any, artifact: Artifact) -> Any:
        """Read the checkpoint into `target`; returns TF's load status."""
        if artifact.model_kind == KERAS2:
            return target.load_weights(str(artifact.path))
        return import_tensorflow().train.Checkpoint(model=target).read(str(artifact.path))

    def restore(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        """`tf.train.Checkpoint(model=...).read` into `into` or a fresh `build()`.

        With by-name options (`var_map`, `only`, `strict=False`, `skip_mismatched`) the values
        are matched by object path instead (``model/_operations/1/_kernel``, what
        `saved_names` lists), so a changed model can take what still fits.
        """
        saved = self.saved_names(artifact, options)
        root = self._root(artifact)
        if options.by_name:
            return restore_variables(self.name, artifact, saved, options,
                                     how="tf.train.load_checkpoint by object path",
                                     object_root=root)

        def fill(target: Any) -> RestoreReport:
            report = RestoreReport()
            # The same matching by object path names what TF's own messages do not: both
            # sides of a shape mismatch, each missing variable by name.
            plan = plan_restore(target_variables(target, object_root=root), saved).report
            if plan.mismatched:
                report.mismatched, report.notes = plan.mismatched, plan.notes
                return report
            status = self._read(target, artifact)
            try:  # TF's own accounting: every variable of the target found in the file
                status.assert_existing_objects_matched()
            except AssertionError as exc:
                if plan.missing:
                    report.missing, report.notes = plan.missing, plan.notes
                else:
                    report.missing.append(f"(tf.train.Checkpoint) {first_lines(exc)}")
            try:  # values the target did not take (an optimizer's slots, say): reported only
                status.assert_consumed()
            except AssertionError as exc:
                report.unused.append(f"(tf.train.Checkpoint) {first_lines(exc, 2)}")
            return report

        how = "model.load_weights (TF checkpoint)" if root == "" else "tf.train.Checkpoint.read"
        return restore_into_rebuilt(self.name, artifact, options, fill,
                                    how=f"{how} into the rebuilt model")

    def saved_names(self, artifact: Artifact, options: RestoreOptions) -> SavedVariables:
        """The checkpoint's values by object path (what `var_map` keys and `only` refer to)."""
        check_checkpoint(artifact.path, artifact.directory, fmt=self.name,
                         allow=not options.safe_mode)
        return checkpoint_variables(str(artifact.path))


class SavedModelFormat(BaseFormat):
    name = "savedmodel"
    capi = CAPI_SAVED_MODEL
    restore_options = INTO_MODEL
    description = "SavedModel directory, run through its serving_default signature"

    def save(self, model: Any, directory: Path, *, inputs: Inputs) -> Artifact:
        tf = import_tensorflow()
        info = describe(model)
        path = directory / "saved_model"
        meta: dict[str, Any] = {}
        if info.kind == KERAS:
            model.export(str(path), format="tf_saved_model", verbose=False,
                         input_signature=input_specs(inputs))
        elif info.kind == KERAS2:  # Keras 2's own SavedModel; its signature names by layer
            model.save(str(path), save_format="tf")
            meta = {"signature_inputs": list(getattr(model, "input_names", None) or []),
                    "signature_outputs": list(getattr(model, "output_names", None) or [])}
        elif info.kind == MODULE:
            tf.saved_model.save(model, str(path), signatures=concrete_function(model, inputs))
        else:
            save_graph_savedmodel(model, path)
        return self.new_artifact(directory, "saved_model", info, inputs,
                                 signature="serving_default", **meta)

    def restore(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        """Load the SavedModel and run its signature; or restore its variables by name.

        By name when `into=` is given, or `build=` together with a by-name option
        (`var_map`, `only`, `strict=False`, `skip_mismatched`): the values of
        ``variables/variables`` go into the model's variables, named by the SavedModel's
        variable names (a Keras model's variable paths, ``enc/kernel``; a tf.Module's attribute
        paths; a TF1 graph's op names). `build=` alone keeps the whole-model load.
        """
        tf = import_tensorflow()
        check_checkpoint(artifact.path / "variables" / "variables", artifact.directory,
                         fmt=self.name, allow=not options.safe_mode)
        if options.into is not None or (options.build is not None and options.by_name):
            # Keras 2's model.save keys the variables by object path from the model (root).
            keras2 = artifact.model_kind == KERAS2
            return restore_variables(
                self.name, artifact, self.saved_names(artifact, options), options,
                how="tf.train.load_checkpoint(variables/variables) by variable name",
                display=None if keras2 else "path", object_root="" if keras2 else None)
        if options.by_name:
            raise needs_target(self.name)
        key = artifact.meta.get("signature", "serving_default")
        screen_saved_model(artifact.path, fmt=self.name, allow=not options.safe_mode)
        loaded = tf.saved_model.load(str(artifact.path))
        try:
            signature = loaded.signatures[key]
        except KeyError:
            raise ArtifactError(f"{artifact.path} has no {key!r} signature; it has "
                                f"{sorted(loaded.signatures)}") from None
        run_signature = signature_runner(signature, key, artifact.meta)
        how = f"tf.saved_model.load + {key!r} signature"
        if artifact.model_kind != KERAS2:
            return Restored(artifact, loaded, run_signature, how=how)
        from .keras_formats import load_keras_model

        keras_model = load_keras_model(artifact)

        def both(args: list[np.ndarray]) -> list[np.ndarray]:
            by_signature = run_signature(args)
            agree_or_raise(by_signature, run(keras_model, args), artifact)
            return by_signature

        return Restored(artifact, keras_model, both,
                        how=f"{how}, and keras.models.load_model (outputs agree)")

    def saved_names(self, artifact: Artifact, options: RestoreOptions) -> SavedVariables:
        """The SavedModel's variables by name (what `var_map` keys and `only` refer to)."""
        return checkpoint_variables(str(artifact.path / "variables" / "variables"),
                                    source=str(artifact.path), group_by_variable_name=True)


def signature_runner(signature: Any, key: str, meta: dict[str, Any]) -> Any:
    """Call a SavedModel signature on positional arrays; returns its outputs as a list.

    Arguments and outputs are ordered as the model orders them when the save recorded that
    (``signature_inputs``/``signature_outputs``: a Keras 2 model names them after its layers),
    else by name in natural order (``output_0``, ``output_1``...).
    """
    tf = import_tensorflow()
    arg_specs = signature.structured_input_signature[1]
    names = signature_order(arg_specs, meta, "inputs")

    def runner(args: list[np.ndarray]) -> list[np.ndarray]:
        if len(args) != len(names):
            raise ValueError(f"signature {key!r} takes {names}, got {len(args)} inputs")
        feeds = {n: tf.constant(a, dtype=arg_specs[n].dtype) for n, a in zip(names, args,
                                                                               strict=True)}
        out = function_call(lambda: signature(**feeds))  # under the persist timeout
        return [out[k].numpy() for k in signature_order(out, meta, "outputs")]

    return runner


def agree_or_raise(by_signature: list[np.ndarray], by_keras: list[np.ndarray],
                   artifact: Artifact) -> None:
    """Raise AssertionError when a Keras 2 SavedModel's two restores compute different outputs.

    Both run the same saved weights through the same ops, so they agree to float rounding.
    """
    worst = max((float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                 for a, b in zip(by_signature, by_keras, strict=True) if np.size(a)), default=0.0)
    if len(by_signature) != len(by_keras) or not all(
            np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True) for a, b in zip(by_signature,
                                                                                    by_keras,
                                                                       strict=True)):
        raise AssertionError(
            f"{artifact.path}: the serving_default signature and keras.models.load_model "
            f"compute different outputs ({len(by_signature)} vs {len(by_keras)} outputs, max "
            f"abs difference {worst:.3g})")


def save_graph_savedmodel(model: GraphModel, path: Path) -> None:
    """TF1 SavedModelBuilder export of a graph model with a serving_default signature."""
    tf = import_tensorflow()
    v1 = tf.compat.v1
    with model.graph.as_default():
        inputs = {t.name.split(":")[0].replace("/", "_"): t
                  for t in (model._tensor(i) for i in model.inputs)}
        outputs = {f"output_{i}": model._tensor(o) for i, o in enumerate(model.outputs)}
        signature = v1.saved_model.signature_def_utils.predict_signature_def(inputs, outputs)
        builder = v1.saved_model.Builder(str(path))
        builder.add_meta_graph_and_variables(
            model.session, [v1.saved_model.tag_constants.SERVING],
            signature_def_map={"serving_default": signature}, strip_default_attrs=True,
        )
        builder.save()
