"""FrozenGraph: a frozen GraphDef and the tensor names needed to run it."""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .graph_io import write_graph_def
from .size import check_size, estimate_graph_bytes
from .structure import graph_variable_ops

if TYPE_CHECKING:  # pragma: no cover
    from tensorflow.core.framework.graph_pb2 import GraphDef


@dataclass
class FrozenGraph:
    """A frozen GraphDef and the tensor names needed to run it.

    ``inputs`` are the feedable placeholders (``"x:0"``), ``outputs`` the fetchable tensors in
    the order of the model's outputs, ``kept_variables`` the variables deliberately left as
    variables (exclude/keep lists); those need a value (restore) before the graph can run.
    """

    graph_def: GraphDef
    inputs: list[str]
    outputs: list[str]
    kept_variables: list[str] = field(default_factory=list)

    def write(self, path: str | os.PathLike[str], *, as_text: bool = False) -> pathlib.Path:
        """Write the graph to ``path``: binary protobuf, or text format when ``as_text``.

        Refuses (GraphTooLargeError) a graph whose constants reach the 2 GiB protobuf limit,
        before serializing it. The file is written atomically (temporary file + fsync +
        rename) and parent directories are created. Returns the path written.
        """
        check_size(estimate_graph_bytes(self.graph_def), "frozen graph")
        return write_graph_def(self.graph_def, path, as_text=as_text)

    def variable_ops(self) -> list[str]:
        """Names of the nodes that still hold, read or write a variable, in graph order.

        Covers variable ops (see VARIABLE_OP_TYPES), resource placeholders and any node that
        calls a library function containing such ops ((Stateful)PartitionedCall, If, While...).
        Empty for a fully frozen graph: this is the structural check of a freeze.
        """
        return graph_variable_ops(self.graph_def)
