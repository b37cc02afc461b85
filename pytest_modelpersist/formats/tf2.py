"""`tf_checkpoint` (object-based `tf.train.Checkpoint`) and `savedmodel`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._tf import import_tensorflow
from ..errors import ArtifactError, first_lines
from ..models import (
    GRAPH,
    KERAS,
    MODULE,
    GraphModel,
    Inputs,
    RestoreReport,
    as_output_list,
    concrete_function,
    describe,
    input_specs,
    natural_key,
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
from .pb.saved import screen_saved_model


class TFCheckpointFormat(BaseFormat):
    name = "tf_checkpoint"
    kinds = frozenset({KERAS, MODULE})
    description = "TF2 tf.train.Checkpoint (object graph), read into a rebuilt model"
    needs_build = True
    restore_options = INTO_MODEL

    def unsupported(self, model: Any, info: Any) -> str | None:
        if info.kind == GRAPH:
            return ("tf_checkpoint saves trackable objects and a TF1 graph model has none "
                    "(its variables go through the ckpt format)")
        return super().unsupported(model, info)

    def save(self, model: Any, directory: Path, *, inputs: Inputs) -> Artifact:
        tf = import_tensorflow()
        prefix = tf.train.Checkpoint(model=model).write(str(directory / "ckpt"))
        return self.new_artifact(directory, Path(prefix).name, describe(model), inputs,
                                 prefix=Path(prefix).name)

    def restore(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        """`tf.train.Checkpoint(model=...).read` into `into` or a fresh `build()`.

        With by-name options (`var_map`, `only`, `strict=False`, `skip_mismatched`) the values
        are matched by object path instead (``model/_operations/1/_kernel``, what
        `saved_names` lists), so a changed model can take what still fits.
        """
        tf = import_tensorflow()
        saved = self.saved_names(artifact, options)
        if options.by_name:
            return restore_variables(self.name, artifact, saved, options,
                                     how="tf.train.load_checkpoint by object path",
                                     object_root="model")

        def fill(target: Any) -> RestoreReport:
            report = RestoreReport()
            # The same matching by object path names what TF's own messages do not: both
            # sides of a shape mismatch, each missing variable by name.
            plan = plan_restore(target_variables(target, object_root="model"), saved).report
            if plan.mismatched:
                report.mismatched, report.notes = plan.mismatched, plan.notes
                return report
            status = tf.train.Checkpoint(model=target).read(str(artifact.path))
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

        return restore_into_rebuilt(self.name, artifact, options, fill,
                                    how="tf.train.Checkpoint.read into the rebuilt model")

    def saved_names(self, artifact: Artifact, options: RestoreOptions) -> SavedVariables:
        """The checkpoint's values by object path (what `var_map` keys and `only` refer to)."""
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
        if info.kind == KERAS:
            model.export(str(path), format="tf_saved_model", verbose=False,
                         input_signature=input_specs(inputs))
        elif info.kind == MODULE:
            tf.saved_model.save(model, str(path), signatures=concrete_function(model, inputs))
        else:
            save_graph_savedmodel(model, path)
        return self.new_artifact(directory, "saved_model", info, inputs,
                                 signature="serving_default")

    def restore(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        """Load the SavedModel and run its signature; or restore its variables by name.

        By name when `into=` is given, or `build=` together with a by-name option
        (`var_map`, `only`, `strict=False`, `skip_mismatched`): the values of
        ``variables/variables`` go into the model's variables, named by the SavedModel's
        variable names (a Keras model's variable paths, ``enc/kernel``; a tf.Module's attribute
        paths; a TF1 graph's op names). `build=` alone keeps the whole-model load.
        """
        tf = import_tensorflow()
        if options.into is not None or (options.build is not None and options.by_name):
            return restore_variables(
                self.name, artifact, self.saved_names(artifact, options), options,
                how="tf.train.load_checkpoint(variables/variables) by variable name",
                display="path")
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
        arg_specs = signature.structured_input_signature[1]
        names = sorted(arg_specs, key=natural_key)

        def runner(args: list[np.ndarray]) -> list[np.ndarray]:
            if len(args) != len(names):
                raise ValueError(f"signature {key!r} takes {names}, got {len(args)} inputs")
            feeds = {n: tf.constant(a, dtype=arg_specs[n].dtype) for n, a in zip(names, args,
                                                                                   strict=True)}
            out = signature(**feeds)
            return as_output_list({k: v.numpy() for k, v in out.items()})

        return Restored(artifact, loaded, runner, how=f"tf.saved_model.load + {key!r} signature")

    def saved_names(self, artifact: Artifact, options: RestoreOptions) -> SavedVariables:
        """The SavedModel's variables by name (what `var_map` keys and `only` refer to)."""
        return checkpoint_variables(str(artifact.path / "variables" / "variables"),
                                    source=str(artifact.path), group_by_variable_name=True)


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
