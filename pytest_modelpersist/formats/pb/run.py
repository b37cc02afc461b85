"""Running a GraphDef once in a fresh tf.Graph and Session (under the persist timeout)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..._session_run import session_run
from .names import tensor_name

if TYPE_CHECKING:  # pragma: no cover
    from tensorflow.core.framework.graph_pb2 import GraphDef

def run_graph_def(
    graph_def: GraphDef,
    feeds: Mapping[str, np.ndarray],
    fetches: Sequence[str],
    *,
    grappler: bool = False,
) -> list[np.ndarray]:
    """Import ``graph_def`` (name="") into a fresh tf.Graph and run ``fetches`` once in a Session.

    ``feeds`` and ``fetches`` are tensor names (``"x:0"``; an op name means its output 0).
    With ``grappler=False`` Grappler (meta optimizer) and the classic graph optimizer
    (constant folding, CSE; OptimizerOptions.L0) are off: the first run of a graph with big
    constants costs far less, and the arithmetic is the same ops on the same values. Eager
    execution stays enabled globally. The run honours the persist timeout (:func:`session_run`).
    Returns the fetched values as numpy arrays, in order.

    Like every ``import_graph_def``, this adds default-valued attrs to ``graph_def``'s nodes in
    place (TensorFlow's behaviour; copying a big graph first would cost more than the run).
    """
    from ..._tf import import_tensorflow

    tf = import_tensorflow()
    if isinstance(fetches, str):
        fetches = [fetches]
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto()
    if not grappler:
        config.graph_options.rewrite_options.disable_meta_optimizer = True
        config.graph_options.optimizer_options.opt_level = tf.compat.v1.OptimizerOptions.L0
    feed_dict = {tensor_name(name): value for name, value in feeds.items()}
    with tf.compat.v1.Session(graph=graph, config=config) as session:
        values = session_run(session, [tensor_name(f) for f in fetches], feed_dict)
    return [np.asarray(v) for v in values]
