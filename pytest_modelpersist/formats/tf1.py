"""`ckpt`: a TF1 `Saver` checkpoint (`checkpoint`, `.meta`, `.index`, `.data-*`).

Keras models and tf.Modules are first traced into a TF1 graph of their own (variables named by
their paths), so their checkpoint carries a `.meta` graph too: the model can be restored with
`import_meta_graph` without its code, exactly like a graph model, or into a rebuilt model.

Which checkpoint restores follows TensorFlow: the one the `checkpoint` state file names (edit it
to pick another, as the seed articles do), or `checkpoint=<step>` / `checkpoint="model-2"`
among several saved with `global_step`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._tf import import_tensorflow
from ..errors import ArtifactError, RestoreOptionError
from ..models import (
    GraphModel,
    Inputs,
    describe,
    function_outputs,
    tf_variable,
    variables,
)
from ..nest_tf import IOMap, graph_io, serving, tensors_by_path
from ..restore.engine import Planned, restore_with
from ..restore.options import INTO_MODEL, RestoreOptions, needs_target
from ..restore.readers import ByName
from ..restore.saved import SavedVariables, checkpoint_variables
from ..tables import graph_table, table_captures
from .base import Artifact, BaseFormat, Restored, pack_outputs
from .containment import check_checkpoint
from .pb.saved import screen_meta_graph

PREFIX = "model"


def graph_model_from_function(model: Any, inputs: Inputs
                              ) -> tuple[GraphModel, dict[str, Any], IOMap]:
    """Trace a Keras model or tf.Module into a fresh TF1 graph + session, same weights.

    Returns the graph model, its variables by the original model's variable names, and the io
    map (which placeholder and output tensor is which input and output path).

    Variables become graph variables named by their paths; the input placeholders are
    ``x:0`` (``x1:0`` ...) and the outputs ``output_0:0`` ... so a loader needs no model code.
    """
    # Over 60 lines: one trace in one graph; its parts share the graph, session and io map.
    tf = import_tensorflow()
    fn, io = serving(model, inputs)
    named = variables(model)
    by_handle = {id(tf_variable(v).handle): name for name, v in named.items()}
    tables = table_captures(model)
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
            if name is not None:
                input_map[internal.name] = graph_vars[name].handle
            elif id(external) in tables:  # a lookup table: its contents as graph constants
                input_map[internal.name] = graph_table(*tables[id(external)]).resource_handle
            elif external.dtype == tf.resource:  # no value to copy
                raise NotImplementedError(
                    f"the model's function captures the resource {internal.name!r}, which is "
                    "not one of its variables; the ckpt format cannot trace it into a graph")
            else:  # a captured constant
                input_map[internal.name] = tf.constant(external.numpy())
        placeholders = []
        for i, ph in enumerate(arg_placeholders):
            new = tf.compat.v1.placeholder(ph.dtype, ph.shape, name="x" if i == 0 else f"x{i}")
            placeholders.append(new)
            input_map[ph.name] = new
        # Output tensors per output path (output_<i> is the i-th path of the io map).
        returned = tensors_by_path(io, function_outputs(fn))
        outs = tf.graph_util.import_graph_def(
            fgraph.as_graph_def(), input_map=input_map,
            return_elements=[t.name for t in returned], name="model",
        )
        outputs = [tf.identity(t, name=f"output_{i}") for i, t in enumerate(outs)]
        init = tf.compat.v1.tables_initializer()
    session = tf.compat.v1.Session(graph=graph)
    session.run(init)
    graph_model = GraphModel(session, inputs=placeholders, outputs=outputs)
    # the assignment initializes each variable: running their zeros initializers first would
    # fill a second copy of the weights (the peak of a big model's save)
    graph_model.load_values([(var, named[n].numpy()) for n, var in graph_vars.items()])
    io.inputs.tensors, io.outputs.tensors = graph_model.input_names, graph_model.output_names
    return graph_model, graph_vars, io


class CkptFormat(BaseFormat):
    name = "ckpt"
    description = "TF1 Saver checkpoint: checkpoint, .meta, .index, .data-*"
    #: check() restores with import_meta_graph, and also into build() when it is given.
    rebuild_optional = True
    restore_options = INTO_MODEL | {"checkpoint"}

    def save(self, model: Any, directory: Path, *, inputs: Inputs,
             global_step: int | None = None) -> Artifact:
        """Write a TF1 Saver checkpoint of `model` under `directory`.

        With `global_step`, the files are ``model-<step>.*`` and earlier steps saved in the same
        directory stay listed in the `checkpoint` state file (a training run's checkpoints).
        """
        tf = import_tensorflow()
        info = describe(model)
        owned = not isinstance(model, GraphModel)
        if owned:
            graph_model, var_list, io = graph_model_from_function(model, inputs)
        else:
            graph_model, var_list = model, variables(model)
            io = graph_io(model)
        try:
            with graph_model.graph.as_default():
                saver = tf.compat.v1.train.Saver(var_list=var_list, save_relative_paths=True,
                                                 max_to_keep=None)
                prefix = saver.save(graph_model.session, str(directory / PREFIX),
                                    global_step=global_step)
        finally:
            if owned:
                graph_model.session.close()
        steps = checkpoint_steps(directory)
        if global_step is not None:
            # Saver(max_to_keep=None) lists only its own save; list every step of the run.
            write_checkpoint_state(directory, Path(prefix).name,
                                   [Path(p).name for _, p in sorted(steps.items())])
        return self.new_artifact(
            directory, PREFIX, info, inputs, prefix=Path(prefix).name,
            inputs=graph_model.input_names, outputs=graph_model.output_names,
            variables=list(var_list), steps=sorted(steps), io=io.to_json(),
        )

    def restore(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        """With `build=` or `into=`: by name into that model; without: `import_meta_graph`.

        ``checkpoint=`` picks a step (``2``) or a prefix (``"model-2"``) instead of the one the
        `checkpoint` state file names. By-name options: see restore.options.
        """
        prefix = self.prefix(artifact, options)
        if options.into_model:
            return self.restore_into(artifact, options, prefix)
        if options.by_name:
            raise needs_target(self.name)
        return self.restore_meta_graph(artifact, prefix, safe_mode=options.safe_mode)

    def prefix(self, artifact: Artifact, options: RestoreOptions) -> str:
        """The checkpoint prefix `options` pick (``checkpoint=``), or the latest; its files
        must lie inside the artifact and hold what its index declares (containment)."""
        prefix = resolve_checkpoint(artifact.directory, options.get("checkpoint"),
                                    default=artifact.meta.get("prefix", PREFIX))
        check_checkpoint(prefix, artifact.directory, fmt=self.name, allow=not options.safe_mode)
        return prefix

    def saved_names(self, artifact: Artifact, options: RestoreOptions) -> SavedVariables:
        """The checkpoint's variables by name (what `var_map` keys and `only` refer to)."""
        return checkpoint_variables(self.prefix(artifact, options))

    def restore_meta_graph(self, artifact: Artifact, prefix: str, *,
                           safe_mode: bool = True) -> Restored:
        """`import_meta_graph` + `Saver.restore` of the chosen checkpoint: no model code.

        With `safe_mode` the `.meta` graph is screened first (pb.screen_meta_graph)."""
        tf = import_tensorflow()
        meta = Path(prefix + ".meta")
        if not meta.exists():
            raise FileNotFoundError(f"{meta} is missing: the checkpoint {prefix} was saved "
                                    "without its graph (write_meta_graph=False)")
        screen_meta_graph(meta, fmt=self.name, allow=not safe_mode,
                          fetches=artifact.meta["outputs"])
        graph = tf.Graph()
        with graph.as_default():
            saver = tf.compat.v1.train.import_meta_graph(str(meta), clear_devices=True)
            if saver is None:
                raise ArtifactError(f"{meta} holds no variables to restore")
            session = tf.compat.v1.Session(graph=graph)
            saver.restore(session, prefix)
            tables = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.TABLE_INITIALIZERS)
            if tables:  # lookup tables of a TF1 graph, filled by their init ops
                session.run(tables)
        restored = GraphModel(session, inputs=artifact.meta["inputs"],
                              outputs=artifact.meta["outputs"])
        which = "" if Path(prefix).name == PREFIX else f" ({Path(prefix).name})"
        return Restored(artifact, restored, lambda x: pack_outputs(artifact, restored(x)),
                        takes_nest=True,
                        how=f"import_meta_graph + Saver.restore{which}")

    def restore_into(self, artifact: Artifact, options: RestoreOptions, prefix: str) -> Restored:
        """Restore saved variables by name into a model (`into`, or a fresh `build()`).

        A TF1 graph target is filled by ``Saver(var_list={saved name: variable}).restore``, the
        seed articles' renaming restore; eager variables (Keras, tf.Module, a dict of
        variables) are assigned the values ``tf.train.load_checkpoint`` reads by name.
        """
        tf = import_tensorflow()
        saved = checkpoint_variables(prefix)

        which = "" if Path(prefix).name == PREFIX else f" ({Path(prefix).name})"

        def assign(target: Any, planned: Planned) -> str | None:
            if not isinstance(target, GraphModel):
                return None  # eager variables: the values read by name are assigned
            with target.graph.as_default():
                saver = tf.compat.v1.train.Saver(
                    var_list={s: planned.variables[t] for s, t in planned.pairs})
                saver.restore(target.session, prefix)
            return f"Saver(var_list={{saved name: variable}}).restore{which}"

        where = "the rebuilt model" if options.into is None else "the given model"
        return restore_with(self.name, artifact, options, ByName(saved, assign=assign),
                            how=f"tf.train.load_checkpoint into {where}{which}")


_STEP = re.compile(r"-(\d+)$")


def checkpoint_steps(directory: Path) -> dict[int, str]:
    """Global step -> prefix of every ``<name>-<step>`` checkpoint in `directory`."""
    found: dict[int, str] = {}
    for index in Path(directory).glob("*.index"):
        prefix = str(index)[: -len(".index")]
        m = _STEP.search(prefix)
        if m:
            found[int(m.group(1))] = prefix
    return found


def write_checkpoint_state(directory: Path, latest: str, all_paths: Sequence[str]) -> Path:
    """Write the `checkpoint` state file (relative paths), atomically; returns its path."""
    from google.protobuf import text_format
    from tensorflow.python.checkpoint.checkpoint_management import CheckpointState

    from .._atomic import atomic_write

    state = CheckpointState(model_checkpoint_path=latest, all_model_checkpoint_paths=all_paths)
    path = Path(directory) / "checkpoint"
    return atomic_write(path, lambda f: f.write(text_format.MessageToString(state).encode()))


def _available(directory: Path) -> list[str]:
    return sorted(p.name[: -len(".index")] for p in Path(directory).glob("*.index"))


def resolve_checkpoint(directory: Path, checkpoint: int | str | None = None, *,
                       default: str = PREFIX) -> str:
    """The checkpoint prefix to restore from `directory`.

    None: the one the `checkpoint` state file names (TensorFlow's ``latest_checkpoint``), or
    `default` when there is no state file; an int: that global step; a str: that prefix
    (``"model-2"``, relative to `directory`, or absolute).
    """
    tf = import_tensorflow()
    directory = Path(directory)
    present = _available(directory)
    if checkpoint is None:
        latest = tf.train.latest_checkpoint(str(directory))
        if latest is not None:
            return latest
        state = tf.train.get_checkpoint_state(str(directory))
        if state is not None and state.model_checkpoint_path:
            raise FileNotFoundError(
                f"the 'checkpoint' state file in {directory} names "
                f"{Path(state.model_checkpoint_path).name!r}, which is not there; checkpoints "
                f"present: {', '.join(present) or '(none)'}")
        if (directory / f"{default}.index").exists():
            return str(directory / default)
        raise FileNotFoundError(f"no 'checkpoint' state file and no {default}.index in "
                                f"{directory}; checkpoints present: "
                                f"{', '.join(present) or '(none)'}")
    if isinstance(checkpoint, bool) or not isinstance(checkpoint, (int, str)):
        raise RestoreOptionError(f"checkpoint= takes a global step (int) or a prefix (str), "
                                 f"not {checkpoint!r}")
    if isinstance(checkpoint, int):
        steps = checkpoint_steps(directory)
        if checkpoint not in steps:
            raise FileNotFoundError(
                f"no checkpoint of step {checkpoint} in {directory}; saved steps: "
                f"{', '.join(map(str, sorted(steps))) or '(none: saved without global_step)'}")
        return steps[checkpoint]
    path = Path(checkpoint)
    path = path if path.is_absolute() else directory / path
    if not Path(f"{path}.index").exists():
        raise FileNotFoundError(f"no checkpoint {checkpoint!r} in {directory} ({path}.index is "
                                f"missing); checkpoints present: {', '.join(present) or '(none)'}")
    return str(path)


def save_steps(model: Any, directory: Path, steps: Sequence[int], *, inputs: Inputs = None,
               update: Callable[[Any, int], None] | None = None) -> Artifact:
    """Save `model` at several global steps into one directory, like a training run.

    `update(model, step)` changes the model before each save (a training step). Returns the
    artifact (its manifest written) whose `checkpoint` state file names the last step.
    """
    fmt = CkptFormat()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    artifact = None
    for step in steps:
        if update is not None:
            update(model, step)
        artifact = fmt.save(model, directory, inputs=inputs, global_step=step)
    if artifact is None:
        raise ArtifactError("save_steps needs at least one step")
    artifact.write_manifest()
    return artifact
