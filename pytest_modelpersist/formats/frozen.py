"""`pb`: a frozen GraphDef (variables -> constants), run by tensor name with a feed dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..models import GraphModel, Inputs, as_input_list, describe
from ..nest_tf import graph_io, serving, tensors_by_path
from ..restore.options import RestoreOptions
from .base import CAPI_GRAPH_DEF, Artifact, BaseFormat, Restored, pack_outputs


class FrozenGraphFormat(BaseFormat):
    name = "pb"
    capi = CAPI_GRAPH_DEF
    restore_options = frozenset({"grappler"})
    description = "frozen GraphDef .pb, import_graph_def and run by tensor name ('x:0')"

    def unsupported(self, model: Any, info: Any) -> str | None:
        from ..tables import find_tables, graph_tables

        held = graph_tables(model) if isinstance(model, GraphModel) else list(find_tables(model))
        if held:
            return (f"a frozen graph holds constants, and the model computes with lookup "
                    f"table(s) {', '.join(held)}, which freezing cannot turn into constants")
        return super().unsupported(model, info)

    def save(self, model: Any, directory: Path, *, inputs: Inputs) -> Artifact:
        from . import pb as freezing

        if isinstance(model, GraphModel):
            frozen = freezing.freeze_session(model.session, model.output_names,
                                             input_names=model.input_names)
            io = graph_io(model)
            outputs = frozen.outputs
        else:
            fn, io = serving(model, inputs)
            frozen = freezing.freeze_function(fn)
            # The frozen outputs come in TF's flatten order of the output dict; the manifest
            # lists them per output path.
            outputs = tensors_by_path(io, frozen.outputs)
        io.inputs.tensors, io.outputs.tensors = list(frozen.inputs), list(outputs)
        frozen.write(directory / "model.pb")
        return self.new_artifact(directory, "model.pb", describe(model), inputs,
                                 inputs=frozen.inputs, outputs=outputs, io=io.to_json())

    def restore(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        """Read and import the graph; with `safe_mode` (the default), refuse a graph holding
        ops that touch files, run Python or may hang (pb.screen) before running it.
        ``grappler=True`` runs it with TensorFlow's graph optimizer on."""
        from . import pb as freezing

        grappler = bool(options.get("grappler", False))
        graph_def = freezing.read_graph_def(artifact.path)
        freezing.screen_graph_def(graph_def, fmt=self.name, path=artifact.path,
                                  allow=not options.safe_mode)
        inputs, outputs = artifact.meta["inputs"], artifact.meta["outputs"]

        def runner(given: Any) -> Any:
            args = as_input_list(given)
            if len(args) != len(inputs):
                raise ValueError(f"{artifact.path} takes inputs {inputs}, got {len(args)} arrays")
            feeds = dict(zip(inputs, args, strict=True))
            return pack_outputs(artifact, freezing.run_graph_def(graph_def, feeds, outputs,
                                                                 grappler=grappler))

        return Restored(artifact, graph_def, runner, how="import_graph_def + Session.run by name",
                        takes_nest=True)
