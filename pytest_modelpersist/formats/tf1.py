"""`ckpt`: a TF1 `Saver` checkpoint (`checkpoint`, `.meta`, `.index`, `.data-*`).

Keras models and tf.Modules are first traced into a TF1 graph of their own (variables named by
their paths), so their checkpoint carries a `.meta` graph too: the model can be restored with
`import_meta_graph` without its code, exactly like a graph model, or into a rebuilt model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._tf import import_tensorflow
from ..models import (
    GraphModel,
    Inputs,
    concrete_function,
    describe,
    function_outputs,
    tf_variable,
    variables,
)
from ..restoring import assign_by_name
from .base import Artifact, BaseFormat, Restored, restore_into_rebuilt, spec_meta

PREFIX = "model"


def graph_model_from_function(model: Any, inputs: Inputs) -> tuple[GraphModel, dict[str, Any]]:
    """Trace a Keras model or tf.Module into a fresh TF1 graph + session, same weights.

    Returns the graph model and its variables by the original model's variable names.

    Variables become graph variables named by their paths; the input placeholders are
    ``x:0`` (``x1:0`` ...) and the outputs ``output_0:0`` ... so a loader needs no model code.
    """
    tf = import_tensorflow()
    fn = concrete_function(model, inputs)
    named = variables(model)
    by_handle = {id(tf_variable(v).handle): name for name, v in named.items()}
    fgraph = fn.graph
    captured = {id(internal): external for external, internal in fgraph.captures}
    arg_placeholders = [t for t in fgraph.inputs if id(t) not in captured]
    graph = tf.Graph()
    with graph.as_default():
        # every variable of the model, captured by the function or not (a Dropout seed, say)
        graph_vars = {
            name: tf.compat.v1.Variable(
                tf.zeros(v.shape, dtype=tf_variable(v).dtype), name=name.replace(":", "_"),
                use_resource=True,
            )
            for name, v in named.items()
        }
        input_map: dict[str, Any] = {}
        for external, internal in fgraph.captures:
            name = by_handle.get(id(external))
            if name is None:  # a captured constant, not a variable
                input_map[internal.name] = tf.constant(external.numpy())
            else:
                input_map[internal.name] = graph_vars[name].handle
        placeholders = []
        for i, ph in enumerate(arg_placeholders):
            new = tf.compat.v1.placeholder(ph.dtype, ph.shape, name="x" if i == 0 else f"x{i}")
            placeholders.append(new)
            input_map[ph.name] = new
        outs = tf.graph_util.import_graph_def(
            fgraph.as_graph_def(), input_map=input_map,
            return_elements=[t.name for t in function_outputs(fn)], name="model",
        )
        outputs = [tf.identity(t, name=f"output_{i}") for i, t in enumerate(outs)]
        init = tf.compat.v1.variables_initializer(list(graph_vars.values()))
    session = tf.compat.v1.Session(graph=graph)
    session.run(init)
    graph_model = GraphModel(session, inputs=placeholders, outputs=outputs)
    graph_model.load_values([(var, named[n].numpy()) for n, var in graph_vars.items()])
    return graph_model, graph_vars


class CkptFormat(BaseFormat):
    name = "ckpt"
    description = "TF1 Saver checkpoint: checkpoint, .meta, .index, .data-*"
    #: check() restores with import_meta_graph, and also into build() when it is given.
    rebuild_optional = True

    def save(self, model: Any, directory: Path, *, inputs: Inputs) -> Artifact:
        tf = import_tensorflow()
        info = describe(model)
        owned = not isinstance(model, GraphModel)
        if owned:
            graph_model, var_list = graph_model_from_function(model, inputs)
        else:
            graph_model, var_list = model, variables(model)
        try:
            with graph_model.graph.as_default():
                saver = tf.compat.v1.train.Saver(var_list=var_list, save_relative_paths=True)
                prefix = saver.save(graph_model.session, str(directory / PREFIX))
        finally:
            if owned:
                graph_model.session.close()
        return self.new_artifact(
            directory, PREFIX, info, prefix=Path(prefix).name,
            inputs=graph_model.input_names, outputs=graph_model.output_names,
            variables=list(var_list), input_specs=spec_meta(inputs),
        )

    def restore(self, artifact: Artifact, *, build: Callable[[], Any] | None = None,
                **options: Any) -> Restored:
        """With `build=`: into the rebuilt model's variables; without: `import_meta_graph`."""
        if build is not None or options.get("into") is not None:
            return self.restore_into(artifact, build, **options)
        return self.restore_meta_graph(artifact)

    def restore_meta_graph(self, artifact: Artifact) -> Restored:
        """`import_meta_graph` + `Saver.restore` of the latest checkpoint: no model code."""
        tf = import_tensorflow()
        prefix = tf.train.latest_checkpoint(str(artifact.directory))
        if prefix is None:
            raise FileNotFoundError(
                f"no 'checkpoint' state file (or it names no checkpoint) in {artifact.directory}"
            )
        graph = tf.Graph()
        with graph.as_default():
            saver = tf.compat.v1.train.import_meta_graph(prefix + ".meta", clear_devices=True)
            if saver is None:
                raise ValueError(f"{prefix}.meta holds no variables to restore")
            session = tf.compat.v1.Session(graph=graph)
            saver.restore(session, prefix)
        restored = GraphModel(session, inputs=artifact.meta["inputs"],
                              outputs=artifact.meta["outputs"])
        return Restored(artifact, restored, restored, how="import_meta_graph + Saver.restore")

    def restore_into(self, artifact: Artifact, build: Callable[[], Any] | None,
                     *, into: Any = None, **options: Any) -> Restored:
        """Restore saved variables by name into a rebuilt model (`build()` or `into`)."""
        tf = import_tensorflow()
        prefix = tf.train.latest_checkpoint(str(artifact.directory)) or str(
            artifact.directory / artifact.meta.get("prefix", PREFIX)
        )
        reader = tf.train.load_checkpoint(prefix)
        dtypes = reader.get_variable_to_dtype_map()
        saved = {n: (tuple(s), dtypes[n]) for n, s in reader.get_variable_to_shape_map().items()}
        return restore_into_rebuilt(
            self, artifact, build, lambda target: assign_by_name(target, saved, reader.get_tensor),
            how="tf.train.load_checkpoint into the rebuilt model", target=into,
        )
