"""An artifact's interface: what its clients rely on besides the numbers it computes.

Per format, read from the files without running the model:

* ``savedmodel``: each signature's input and output keys with dtype, shape and tensor name, the
  meta graph tags, and the sorted op types of the graph and its function library;
* ``pb`` (frozen GraphDef): the ``graph`` signature keyed by tensor name (``x:0``), and ops;
* ``ckpt``: the ``.meta`` graph's signatures, its ``graph`` signature, collection names, ops,
  and the checkpoint's variable keys;
* ``keras`` / ``h5``: the ``model`` signature (input names, shapes, dtypes; output layer names
  and dtypes) and the layer classes a loader must know;
* ``tf_checkpoint`` / ``weights_h5``: the variable keys, dtypes and shapes.

`extract` returns a JSON-able document (None for a format it does not know); `diff` compares
two documents into readable lines (``serving_default: input 'x' renamed to 'inputs'``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .diff import diff, spec_text

__all__ = ["EXTRACTORS", "diff", "extract", "of_artifact", "spec_text"]

Doc = dict[str, Any]


def _savedmodel(path: Path, meta: Mapping[str, Any]) -> Doc:
    from .graphs import savedmodel_interface

    return savedmodel_interface(path)


def _pb(path: Path, meta: Mapping[str, Any]) -> Doc:
    from .graphs import frozen_graph_interface

    return frozen_graph_interface(path, meta=meta)


def _ckpt(path: Path, meta: Mapping[str, Any]) -> Doc:
    """The saved graph (``<prefix>.meta``) and the variables of the checkpoint it goes with."""
    from .graphs import meta_graph_interface
    from .keras_files import checkpoint_interface

    prefix = Path(path).parent / str(meta.get("prefix") or Path(path).name)
    doc: Doc = {}
    graph = prefix.parent / f"{prefix.name}.meta"
    if graph.is_file():
        doc.update(meta_graph_interface(graph, meta=meta))
    doc.update(checkpoint_interface(prefix))
    return doc


def _keras(path: Path, meta: Mapping[str, Any]) -> Doc:
    from .keras_files import keras_archive_interface

    return keras_archive_interface(path)


def _h5(path: Path, meta: Mapping[str, Any]) -> Doc:
    from .keras_files import legacy_h5_interface

    return legacy_h5_interface(path)


def _tf_checkpoint(path: Path, meta: Mapping[str, Any]) -> Doc:
    from .keras_files import checkpoint_interface

    return checkpoint_interface(path)


def _weights_h5(path: Path, meta: Mapping[str, Any]) -> Doc:
    from .keras_files import weights_h5_interface

    return weights_h5_interface(path)


#: format name -> extractor(main path, artifact meta) -> document.
EXTRACTORS: dict[str, Callable[[Path, Mapping[str, Any]], Doc]] = {
    "savedmodel": _savedmodel,
    "pb": _pb,
    "ckpt": _ckpt,
    "keras": _keras,
    "h5": _h5,
    "tf_checkpoint": _tf_checkpoint,
    "weights_h5": _weights_h5,
}


def extract(fmt: str, path: Path | str, *, meta: Mapping[str, Any] | None = None) -> Doc | None:
    """The interface of the artifact of format `fmt` whose main file is `path`.

    `meta` is the artifact's manifest meta (the input/output tensor names of a graph, the
    checkpoint prefix). Returns None for a format without an extractor (a third party's).
    Raises ValueError naming the file when it cannot be read as that format.
    """
    extractor = EXTRACTORS.get(fmt)
    if extractor is None:
        return None
    return extractor(Path(path), meta or {})


def of_artifact(artifact: Any) -> Doc | None:
    """The interface of a saved `Artifact` (its `.format`, `.path` and `.meta`)."""
    return extract(artifact.format, artifact.path, meta=artifact.meta)
