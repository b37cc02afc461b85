"""Every object path of a value in an object-based (TF2) checkpoint.

TensorFlow names a checkpoint value by the first path to its object, breadth first: a trained
Keras model's kernel is saved under its optimizer's list (``model/optimizer/_trainable_variables
/0``), while a fresh model has no optimizer and reaches the same kernel by its layer's path. The
object graph stored in the checkpoint keeps every path; restores match any of them.
"""

from __future__ import annotations

from collections import deque
from typing import Any

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def _escape(name: str) -> str:
    # TensorFlow's escaping of local names in object-based checkpoint keys.
    return name.replace(".", "..").replace("/", ".S")


def checkpoint_object_paths(reader: Any, most: int = 8) -> dict[str, tuple[str, ...]]:
    """Object-based checkpoint key -> every object path (up to `most`) of the value's object.

    TensorFlow names a value by the first path breadth first; the object graph keeps the
    others (a variable tracked by a layer and by an optimizer).
    """
    try:
        from tensorflow.core.protobuf import trackable_object_graph_pb2

        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor(OBJECT_GRAPH_KEY))
    except Exception:  # an unreadable object graph: entries keep their first path
        return {}
    paths: dict[int, list[str]] = {0: [""]}
    queue = deque([(0, "")])  # each path of a node is expanded once, breadth first
    while queue:
        node_id, path = queue.popleft()
        for child in graph.nodes[node_id].children:
            known = paths.setdefault(child.node_id, [])
            local = _escape(child.local_name)
            child_path = f"{path}/{local}" if path else local
            if len(known) < most and child_path not in known:
                known.append(child_path)
                queue.append((child.node_id, child_path))
    return {attr.checkpoint_key: tuple(paths.get(i, ())) for i, node in enumerate(graph.nodes)
            for attr in node.attributes}
