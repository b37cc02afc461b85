"""`tf_checkpoint` (object-based `tf.train.Checkpoint`) and `savedmodel`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import nest
from .._session_run import function_call
from .._tf import import_keras, import_tensorflow
from ..errors import ArtifactError, first_lines
from ..models import (
    GRAPH,
    KERAS,
    KERAS2,
    MODULE,
    GraphModel,
    Inputs,
    as_input_list,
    describe,
    natural_key,
    run,
    signature_order,
)
from ..nest_tf import (
    IOMap,
    Serving,
    graph_io,
    keras2_signature_io,
    keras2_signature_order,
    serving,
)
from ..restore.engine import Planned, restore_with
from ..restore.options import INTO_MODEL, RestoreOptions, needs_target
from ..restore.plan import plan_restore
from ..restore.readers import ByName
from ..restore.saved import SavedVariables, checkpoint_variables
from ..restore.targets import target_variables
from . import shards
from .base import CAPI_SAVED_MODEL, Artifact, BaseFormat, Restored, pack_outputs
from .containment import check_checkpoint
from .pb.saved import screen_saved_model


class TFCheckpointFormat(BaseFormat):
    name = "tf_checkpoint"
    kinds = frozenset({KERAS, KERAS2, MODULE})
    description = ("TF2 object-graph checkpoint (tf.train.Checkpoint; Keras 2: save_weights), "
                   "read into a rebuilt model")
    needs_build = True
    restore_options = INTO_MODEL
    save_options = {shards.OPTION: float}

    def unsupported(self, model: Any, info: Any) -> str | None:
        if info.kind == GRAPH:
            return ("tf_checkpoint saves trackable objects and a TF1 graph model has none "
                    "(its variables go through the ckpt format)")
        return super().unsupported(model, info)

    def save(self, model: Any, directory: Path, *, inputs: Inputs,
             max_shard_mb: float | None = None) -> Artifact:
        tf = import_tensorflow()
        info = describe(model)
        options, why = shards.tf_options(max_shard_mb)
        if info.kind == KERAS2:  # Keras 2's own TF-format weights: the model is the root
            prefix = str(directory / "ckpt")
            model.save_weights(prefix, options=options)
        else:
            prefix = tf.train.Checkpoint(model=model).write(str(directory / "ckpt"),
                                                            options=options)
        artifact = self.new_artifact(directory, Path(prefix).name, info, inputs,
                                     prefix=Path(prefix).name)
        if max_shard_mb is not None:
            shards.mark(artifact, shards.data_files(prefix), why)
        return artifact

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
            return restore_with(self.name, artifact, options, ByName(saved, object_root=root),
                                how="tf.train.load_checkpoint by object path")
        how = "model.load_weights (TF checkpoint)" if root == "" else "tf.train.Checkpoint.read"
        return restore_with(self.name, artifact, options, CheckpointRead(artifact, saved, root),
                            how=f"{how} into the rebuilt model")

    def saved_names(self, artifact: Artifact, options: RestoreOptions) -> SavedVariables:
        """The checkpoint's values by object path (what `var_map` keys and `only` refer to)."""
        shards.check_recorded(artifact)
        check_checkpoint(artifact.path, artifact.directory, fmt=self.name,
                         allow=not options.safe_mode)
        return checkpoint_variables(str(artifact.path))


class CheckpointRead:
    """The whole-model read of an object-graph checkpoint (TF's own loader), accounted by
    object path: the reader the `tf_checkpoint` format hands the restore engine."""

    def __init__(self, artifact: Artifact, saved: SavedVariables, root: str) -> None:
        self.artifact = artifact
        self.saved = saved
        self.root = root

    def plan(self, target: Any, artifact: Artifact, options: RestoreOptions) -> Planned:
        # The same matching by object path names what TF's own messages do not: what was
        # restored, each missing variable, both sides of a shape mismatch, and the file's
        # entries nothing took (an optimizer's slots, say: reported, not failures).
        # A mismatch fills nothing.
        tv = target_variables(target, object_root=self.root)
        report = plan_restore(tv, self.saved).report
        return Planned({} if report.mismatched else tv.named, report)

    def fill(self, target: Any, planned: Planned) -> str | None:
        report = planned.report
        try:
            status = TFCheckpointFormat._read(target, self.artifact)
        except AssertionError as exc:  # Keras 2's load_weights: nothing in the file matched
            if not report.missing:
                report.missing.append(f"(model.load_weights) {first_lines(exc)}")
            return None
        try:  # TF's own accounting: every variable of the target found in the file
            status.assert_existing_objects_matched()
        except AssertionError as exc:
            if not report.missing:  # something the matching by path did not see
                report.missing.append(f"(tf.train.Checkpoint) {first_lines(exc)}")
                report.restored = []  # TF's own read matched nothing it could name
            return None
        if report.missing:  # TF matched them after all: the perturbation check decides
            report.restored, report.missing = list(planned.variables), []
        return None


class SavedModelFormat(BaseFormat):
    name = "savedmodel"
    capi = CAPI_SAVED_MODEL
    restore_options = INTO_MODEL
    save_options = {shards.OPTION: float}
    description = "SavedModel directory, run through its serving_default signature"

    def save(self, model: Any, directory: Path, *, inputs: Inputs,
             max_shard_mb: float | None = None) -> Artifact:
        # Over 60 lines: one branch per model kind, each the library's own export.
        tf = import_tensorflow()
        info = describe(model)
        path = directory / "saved_model"
        options, why = shards.tf_options(max_shard_mb, saved_model=True)
        io: IOMap | None
        if info.kind == KERAS:
            # One argument per input leaf, named by its path, one output key per output path:
            # the manifest's io map says which is which (never the order names sort in).
            # Keras' ExportArchive tracks its variables so the TF1 loader (C API) finds them.
            keras_serving = Serving(model, inputs, keras_model=True)
            archive = import_keras().export.ExportArchive()
            archive.track(model)
            archive.add_endpoint("serve", keras_serving.fn, input_signature=keras_serving.specs)
            archive.write_out(str(path), options=options, verbose=False)
            io = keras_serving.io()
        elif info.kind == KERAS2:
            # Keras 2's own SavedModel, as model.save(dir) writes it for serving code: its
            # signature names arguments and outputs after the layers, flat; the io map gives
            # them the model's structure back.
            model.save(str(path), save_format="tf", options=options)
            io = keras2_signature_io(model, inputs, path)
        elif info.kind == MODULE:
            fn, io = serving(model, inputs)
            tf.saved_model.save(model, str(path), signatures={"serving_default": fn},
                                options=options)
        else:
            io = save_graph_savedmodel(model, path)
            why = why or ("a TF1 graph's SavedModelBuilder writes its variables with a TF1 "
                          "Saver, which shards by device, never by size")
        meta = {"io": io.to_json()} if io is not None else keras2_signature_order(model)
        artifact = self.new_artifact(directory, "saved_model", info, inputs,
                                     signature="serving_default", **meta)
        if max_shard_mb is not None:
            shards.mark(artifact, shards.data_files(path / "variables" / "variables"), why)
        return artifact

    def restore(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        """Load the SavedModel and run its signature; or restore its variables by name.

        By name when `into=` is given, or `build=` together with a by-name option
        (`var_map`, `only`, `strict=False`, `skip_mismatched`): the values of
        ``variables/variables`` go into the model's variables, named by the SavedModel's
        variable names (a Keras model's variable paths, ``enc/kernel``; a tf.Module's attribute
        paths; a TF1 graph's op names). `build=` alone keeps the whole-model load.
        """
        # Over 60 lines: the file-alone and by-name paths share the artifact checks read first.
        tf = import_tensorflow()
        shards.check_recorded(artifact)
        check_checkpoint(artifact.path / "variables" / "variables", artifact.directory,
                         fmt=self.name, allow=not options.safe_mode)
        if options.into is not None or (options.build is not None and options.by_name):
            # Keras 2's model.save keys the variables by object path from the model (root).
            keras2 = artifact.model_kind == KERAS2
            reader = ByName(self.saved_names(artifact, options),
                            display=None if keras2 else "path",
                            object_root="" if keras2 else None)
            return restore_with(self.name, artifact, options, reader,
                                how="tf.train.load_checkpoint(variables/variables) by variable "
                                    "name")
        if options.by_name:
            raise needs_target(self.name)
        key = artifact.meta.get("signature", "serving_default")
        screen_saved_model(artifact.path, fmt=self.name, allow=not options.safe_mode)
        if not tf.executing_eagerly():  # a process that called disable_eager_execution()
            return self.restore_in_session(artifact, key)
        # its init ops run here: under the persist timeout too
        loaded = function_call(lambda: tf.saved_model.load(str(artifact.path)))
        try:
            signature = loaded.signatures[key]
        except KeyError:
            raise ArtifactError(f"{artifact.path} has no {key!r} signature; it has "
                                f"{sorted(loaded.signatures)}") from None
        arg_specs = signature.structured_input_signature[1]
        io = IOMap.from_meta(artifact.meta)
        # No io map (an older artifact; a Keras 2 one whose keys did not line up): the order
        # the save recorded, else argument names in natural order.
        names = io.inputs.names if io else signature_order(arg_specs, artifact.meta, "inputs")

        def runner(inputs: Any) -> Any:
            args = as_input_list(inputs)
            if len(args) != len(names):
                raise ValueError(f"signature {key!r} takes {names}, got {len(args)} inputs")
            feeds = {n: tf.constant(a, dtype=arg_specs[n].dtype) for n, a in zip(names, args,
                                                                                   strict=True)}
            out = function_call(lambda: signature(**feeds))  # under the persist timeout
            if io is None:
                return [nest.as_array(out[k], k)
                        for k in signature_order(out, artifact.meta, "outputs")]
            return pack_outputs(artifact, [out[k] for k in io.outputs.names])

        how = f"tf.saved_model.load + {key!r} signature"
        from .keras_formats import load_keras_model, read_by_keras2

        if not read_by_keras2(artifact):  # Keras 3's load_model reads no SavedModel
            return Restored(artifact, loaded, runner, how=how, takes_nest=True)

        keras_model = load_keras_model(artifact)

        def both(inputs: Any) -> Any:
            by_signature = runner(inputs)
            agree_or_raise(nest.flat_arrays(by_signature)[1],
                           nest.flat_arrays(run(keras_model, inputs))[1], artifact)
            return by_signature

        return Restored(artifact, keras_model, both, takes_nest=True,
                        how=f"{how}, and keras.models.load_model (outputs agree)")

    def restore_in_session(self, artifact: Artifact, key: str) -> Restored:
        """The TF1 loader (``tf.compat.v1.saved_model.load`` into a Session), run by the
        signature's tensor names: what graph-mode code (eager execution disabled) does."""
        tf = import_tensorflow()
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph)
        with graph.as_default():
            meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], str(artifact.path))
        if key not in meta_graph.signature_def:
            raise KeyError(f"{artifact.path} has no {key!r} signature; it has "
                           f"{sorted(meta_graph.signature_def)}")
        sig = meta_graph.signature_def[key]
        io = IOMap.from_meta(artifact.meta)
        in_keys = io.inputs.names if io else sorted(sig.inputs, key=natural_key)
        out_keys = io.outputs.names if io else sorted(sig.outputs, key=natural_key)
        model = GraphModel(session, inputs=[sig.inputs[k].name for k in in_keys],
                           outputs=[sig.outputs[k].name for k in out_keys])
        return Restored(artifact, model, lambda x: pack_outputs(artifact, model(x)),
                        how=f"tf.compat.v1.saved_model.load + {key!r} signature (graph mode)",
                        takes_nest=True)

    def saved_names(self, artifact: Artifact, options: RestoreOptions) -> SavedVariables:
        """The SavedModel's variables by name (what `var_map` keys and `only` refer to)."""
        return checkpoint_variables(str(artifact.path / "variables" / "variables"),
                                    source=str(artifact.path), group_by_variable_name=True)


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


def save_graph_savedmodel(model: GraphModel, path: Path) -> IOMap:
    """TF1 SavedModelBuilder export of a graph model with a serving_default signature.

    Returns the io map: which signature input is which of the model's inputs, in order.
    """
    tf = import_tensorflow()
    v1 = tf.compat.v1
    io = graph_io(model)
    with model.graph.as_default():
        inputs = dict(zip(io.inputs.names, (model._tensor(i) for i in model.inputs),
                          strict=True))
        outputs = dict(zip(io.outputs.names, (model._tensor(o) for o in model.outputs),
                           strict=True))
        signature = v1.saved_model.signature_def_utils.predict_signature_def(inputs, outputs)
        builder = v1.saved_model.Builder(str(path))
        # Lookup tables are filled by their initializers when the SavedModel loads.
        tables = v1.get_collection(v1.GraphKeys.TABLE_INITIALIZERS)
        builder.add_meta_graph_and_variables(
            model.session, [v1.saved_model.tag_constants.SERVING],
            signature_def_map={"serving_default": signature}, strip_default_attrs=True,
            main_op=v1.group(*tables) if tables else None,
        )
        builder.save()
    return io
