"""Screening the graphs of a SavedModel (``saved_model.pb``) and of a TF1 ``.meta`` file.

Such graphs legitimately hold file ops: their own save/restore ops (``SaveV2``/``RestoreV2``
reading the checkpoint the loader names through ``saver_def.filename_tensor_name``) and table
initializers reading the artifact's own assets (``asset_file_def``). Only those, in the
subgraphs the loader itself runs (the saver's save/restore ops, the init ops) and with their
file name coming from what the loader feeds (never an absolute or ``..`` constant), are let
through; every other op :mod:`.screen` calls unsafe is refused, in any meta graph, any
function of the library, any signature.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from .names import ancestors, op_name
from .screen import SAVER_OP_TYPES, UnsafeGraphError, refuse, unsafe_ops
from .structure import called

_TABLE_INIT_OPS = frozenset({"InitializeTableFromTextFile", "InitializeTableFromTextFileV2"})
_INIT_COLLECTIONS = ("saved_model_main_op", "saved_model_legacy_init_op", "main_op",
                     "legacy_init_op", "table_initializer", "init_op")
_MAX_PROTO_BYTES = 2**31 - 1


def screen_saved_model(directory: str | os.PathLike[str], *, fmt: str = "savedmodel",
                       allow: bool = False) -> None:
    """Refuse (UnsafeGraphError) a SavedModel whose graphs touch files, Python or may hang.

    Reads ``saved_model.pb`` only (before ``tf.saved_model.load`` runs anything). ``allow``
    (the test's ``unsafe=True``) skips the screen. A file that is not a SavedModel is left to
    the loader, which names the problem itself.
    """
    if allow:
        return
    from tensorflow.core.protobuf import saved_model_pb2

    path = Path(directory) / "saved_model.pb"
    saved = saved_model_pb2.SavedModel()
    if not _parse(saved, path):
        return
    for index, meta_graph in enumerate(saved.meta_graphs):
        tags = ",".join(meta_graph.meta_info_def.tags) or f"#{index}"
        _screen_meta_graph(meta_graph, fmt=fmt, path=path, assets=Path(directory) / "assets",
                           what=f"SavedModel graph (tags {tags})")


def screen_meta_graph(path: str | os.PathLike[str], *, fmt: str = "ckpt",
                      allow: bool = False, fetches: Sequence[str] | None = None) -> None:
    """Refuse (UnsafeGraphError) a TF1 ``.meta`` graph whose ops touch files, Python or may
    hang, before ``import_meta_graph``; the saver's restore group is screened like the rest.

    ``fetches`` (the tensors the restore will fetch), when given, limits the screen to what a
    Session can run here: their ancestors, the saver's restore op's, and the functions those
    call (a Session runs nothing else). Other savers a training graph kept (one per
    ``Saver()``) are then out of the way; without ``fetches`` every node is screened.
    """
    if allow:
        return
    from tensorflow.core.protobuf import meta_graph_pb2

    meta_graph = meta_graph_pb2.MetaGraphDef()
    if _parse(meta_graph, Path(path)):
        if fetches is not None:
            _keep_only_what_runs(meta_graph, fetches)
        _screen_meta_graph(meta_graph, fmt=fmt, path=Path(path), assets=None,
                           what="checkpoint's meta graph")


def _keep_only_what_runs(meta_graph: Any, fetches: Sequence[str]) -> None:
    """Drop from ``meta_graph`` the nodes and functions no fetch and no restore op needs."""
    graph_def = meta_graph.graph_def
    nodes = {n.name: n for n in graph_def.node}
    roots = [op_name(f) for f in fetches] + [
        op_name(n) for n in (meta_graph.saver_def.restore_op_name,) if n]
    reached = ancestors(nodes, roots)
    functions = _called_functions(graph_def, (nodes[n] for n in reached))
    kept = [n for n in graph_def.node if n.name in reached]
    del graph_def.node[:]
    graph_def.node.extend(kept)
    kept_functions = [f for f in graph_def.library.function if f.signature.name in functions]
    del graph_def.library.function[:]
    graph_def.library.function.extend(kept_functions)


def _parse(message: Any, path: Path) -> bool:
    """Parse ``path`` into ``message``; False when it cannot be read or parsed (the loader
    reports that with its own words)."""
    from google.protobuf import message as pb_message

    try:
        if path.stat().st_size > _MAX_PROTO_BYTES:
            return False
        message.ParseFromString(path.read_bytes())
    except (OSError, pb_message.DecodeError, RuntimeError, ValueError):
        return False
    return True


def _screen_meta_graph(meta_graph: Any, *, fmt: str, path: Path, assets: Path | None,
                       what: str) -> None:
    graph_def = meta_graph.graph_def
    asset_tensors = {op_name(a.tensor_info.name) for a in meta_graph.asset_file_def}
    bad_assets = [a.filename for a in meta_graph.asset_file_def
                  if not _inside(a.filename, assets)]
    if bad_assets:
        raise UnsafeGraphError(
            f"{path}: the {what} names asset files outside its assets/ directory "
            f"({', '.join(repr(b) for b in bad_assets[:5])}); refused by default ({fmt!r}). "
            "If you trust this file, opt in for this test only: "
            "@pytest.mark.persist(unsafe=True)")
    allowed = set(_loader_file_ops(meta_graph, asset_tensors))
    refuse(unsafe_ops(graph_def, allowed=allowed), fmt=fmt, path=path, what=what)


def _inside(filename: str, assets: Path | None) -> bool:
    pure = PurePosixPath(filename)
    if pure.is_absolute() or ".." in pure.parts or assets is None:
        return False
    target = os.path.realpath(assets / filename)
    return target.startswith(os.path.realpath(assets) + os.sep)


def _loader_file_ops(meta_graph: Any, asset_tensors: set[str]) -> Iterator[str]:
    """The file ops the loader itself runs, fed by the loader: saver and asset-table ops."""
    graph_def = meta_graph.graph_def
    nodes = {n.name: n for n in graph_def.node}
    saver = meta_graph.saver_def
    feeds = {op_name(saver.filename_tensor_name)} | asset_tensors if saver.filename_tensor_name \
        else set(asset_tensors)
    saver_roots = [op_name(n) for n in (saver.save_tensor_name, saver.restore_op_name) if n]
    init_roots = [op_name(n) for n in _init_op_names(meta_graph)]
    for roots, kinds in ((saver_roots, SAVER_OP_TYPES), (init_roots, _TABLE_INIT_OPS)):
        reached = ancestors(nodes, roots)
        for name in reached:
            node = nodes[name]
            if node.op in kinds and _fed_file_name(nodes, node, feeds):
                yield name
        functions = _called_functions(graph_def, (nodes[n] for n in reached))
        for function in graph_def.library.function:
            if function.signature.name in functions:
                yield from _function_file_ops(function, kinds)


def _init_op_names(meta_graph: Any) -> list[str]:
    """Ops a loader runs on load: the init signature's outputs and the init collections."""
    names = []
    init = meta_graph.signature_def.get("__saved_model_init_op")
    if init is not None:
        names += [t.name for t in init.outputs.values()]
    for key in _INIT_COLLECTIONS:
        if key in meta_graph.collection_def:
            names += list(meta_graph.collection_def[key].node_list.value)
    return names


def _called_functions(graph_def: Any, start: Iterable[Any]) -> set[str]:
    """Names of the library functions the ``start`` nodes call, transitively."""
    functions = {f.signature.name: f for f in graph_def.library.function}
    seen: set[str] = set()
    stack = [f for node in start for f in called(node) if f in functions]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack += [f for n in functions[name].node_def for f in called(n) if f in functions]
    return seen


def _fed_file_name(nodes: dict[str, Any], node: Any, feeds: set[str]) -> bool:
    """True when input 0 (the file name or prefix) derives from a tensor the loader feeds and
    from no constant that is absolute or climbs with ``..``."""
    if not node.input:
        return False
    reached = ancestors(nodes, [op_name(node.input[0])])
    return bool(reached & feeds) and not any(
        _escaping_const(nodes[n]) for n in reached - feeds)


def _function_file_ops(function: Any, kinds: frozenset[str]) -> Iterator[str]:
    """``function/node`` of the ``kinds`` ops whose file name comes from a function argument."""
    nodes = {n.name: n for n in function.node_def}
    args = {a.name for a in function.signature.input_arg}
    for node in function.node_def:
        if node.op not in kinds or not node.input:
            continue
        reached = _function_ancestors(nodes, node.input[0])
        if reached & args and not any(_escaping_const(nodes[n]) for n in reached
                                      if n in nodes):
            yield f"{function.signature.name}/{node.name}"


def _function_ancestors(nodes: dict[str, Any], start: str) -> set[str]:
    """Node and argument names an input of a function body depends on."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        name = stack.pop().lstrip("^").split(":")[0]
        if name in seen:
            continue
        seen.add(name)
        if name in nodes:
            stack += list(nodes[name].input)
    return seen


def _escaping_const(node: Any) -> bool:
    """A string Const naming an absolute path or one that climbs out with '..'."""
    if node.op != "Const":
        return False
    tensor = node.attr["value"].tensor if "value" in node.attr else None
    for value in (tensor.string_val if tensor is not None else ()):
        text = value.decode("utf-8", "replace")
        if text.startswith(("/", "\\")) or ".." in text or ":" in text[:3] or "://" in text:
            return True
    return False
