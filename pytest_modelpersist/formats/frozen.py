"""`pb`: a frozen GraphDef (variables -> constants), run by tensor name with a feed dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..models import GraphModel, Inputs, concrete_function, describe
from ..restore.options import RestoreOptions
from .base import CAPI_GRAPH_DEF, Artifact, BaseFormat, Restored


class FrozenGraphFormat(BaseFormat):
    name = "pb"
    capi = CAPI_GRAPH_DEF
    restore_options = frozenset({"grappler"})
    description = "frozen GraphDef .pb, import_graph_def and run by tensor name ('x:0')"

    def save(self, model: Any, directory: Path, *, inputs: Inputs) -> Artifact:
        from . import pb as freezing

        if isinstance(model, GraphModel):
            frozen = freezing.freeze_session(model.session, model.output_names,
                                             input_names=model.input_names)
        else:
            frozen = freezing.freeze_function(concrete_function(model, inputs))
        frozen.write(directory / "model.pb")
        return self.new_artifact(directory, "model.pb", describe(model), inputs,
                                 inputs=frozen.inputs, outputs=frozen.outputs)

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

        def runner(args: list[np.ndarray]) -> list[np.ndarray]:
            if len(args) != len(inputs):
                raise ValueError(f"{artifact.path} takes inputs {inputs}, got {len(args)} arrays")
            feeds = dict(zip(inputs, args, strict=True))
            return freezing.run_graph_def(graph_def, feeds, outputs, grappler=grappler)

        return Restored(artifact, graph_def, runner, how="import_graph_def + Session.run by name")
