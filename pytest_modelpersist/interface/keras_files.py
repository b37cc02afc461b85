"""Interfaces of Keras files and checkpoints, read from their config and indexes.

A `.keras` archive's ``config.json`` and a legacy `.h5` file's ``model_config`` attribute name the
model's inputs (InputLayer name, batch shape, dtype), its output layers (name, dtype from the
layer's dtype policy) and the layer classes a loader must know (``churnlab>Standardize``). No
layer code runs. Checkpoints (`tf_checkpoint`, `ckpt`, `weights_h5`) are contracts by their keys:
a renamed variable no longer restores from files written before.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

Doc = dict[str, Any]
VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def _policy_dtype(dtype: Any) -> str | None:
    """The compute dtype of a layer's serialized dtype policy (``mixed_float16`` -> float16)."""
    if isinstance(dtype, Mapping):  # Keras 3: {"class_name": "DTypePolicy", "config": {...}}
        dtype = dtype.get("config", {}).get("name")
    if not isinstance(dtype, str):
        return None
    return dtype.split("_", 1)[1] if dtype.startswith("mixed_") else dtype


def _class_of(entry: Mapping[str, Any]) -> str:
    """``Dense`` for a built-in layer, ``<package>>Class`` for a registered custom one."""
    registered = entry.get("registered_name")
    return str(registered) if registered and ">" in str(registered) else str(
        entry.get("class_name"))


def _layer_refs(refs: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key, layer name) of Functional `input_layers`/`output_layers`: a [name, node, tensor]
    triple, or a list/dict of them (a dict's keys name a model's inputs/outputs)."""
    if (isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str)
            and all(isinstance(i, int) for i in refs[1:])):
        yield key or refs[0], refs[0]
    elif isinstance(refs, Mapping):
        for k in refs:
            yield from _layer_refs(refs[k], str(k))
    elif isinstance(refs, list):
        for item in refs:
            yield from _layer_refs(item)


def _input_spec(layer: Mapping[str, Any]) -> Doc:
    cfg = layer.get("config", {})
    shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
    spec: Doc = {"dtype": _policy_dtype(cfg.get("dtype"))}
    if isinstance(shape, list):
        spec["shape"] = shape
    return spec


def _all_layers(config: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every serialized layer, nested models' layers included."""
    for layer in config.get("config", {}).get("layers", []) or []:
        if isinstance(layer, Mapping):
            yield layer
            if isinstance(layer.get("config"), Mapping) and "layers" in layer["config"]:
                yield from _all_layers(layer)


def model_config_interface(config: Mapping[str, Any]) -> Doc:
    """The ``model`` signature and layer classes of a serialized Keras model config.

    Functional models name their inputs and outputs; a Sequential model's input is its
    InputLayer (or its build shape) and its output its last layer; a subclassed model records
    its build input shape, when Keras kept one.
    """
    body = config.get("config", {}) if isinstance(config.get("config"), Mapping) else {}
    layers = {layer.get("config", {}).get("name", layer.get("name")): layer
              for layer in body.get("layers", []) or [] if isinstance(layer, Mapping)}
    inputs: Doc = {}
    outputs: Doc = {}
    if "input_layers" in body:
        for key, name in _layer_refs(body["input_layers"]):
            inputs[key] = _input_spec(layers.get(name, {}))
        for key, name in _layer_refs(body.get("output_layers", [])):
            layer = layers.get(name, {})
            outputs[key] = {"dtype": _policy_dtype(layer.get("config", {}).get("dtype"))}
    elif config.get("class_name") == "Sequential" and layers:
        ordered = list(layers.values())
        first = ordered[0]
        if first.get("class_name") == "InputLayer":
            inputs[first.get("config", {}).get("name", "input")] = _input_spec(first)
        elif isinstance(body.get("build_input_shape"), list):
            inputs["input"] = {"shape": body["build_input_shape"]}
        last = ordered[-1]
        outputs[last.get("config", {}).get("name", "output")] = {
            "dtype": _policy_dtype(last.get("config", {}).get("dtype"))}
    else:
        shape = (config.get("build_config") or {}).get("input_shape")
        if isinstance(shape, list):
            inputs["input"] = {"shape": shape}
    classes = {_class_of(layer) for layer in _all_layers(config)} | {_class_of(config)}
    return {"signatures": {"model": {"inputs": inputs, "outputs": outputs}},
            "layers": sorted(classes)}


def keras_archive_interface(path: Path) -> Doc:
    """The interface of a `.keras` archive, from its ``config.json``."""
    from ..formats.containment import read_small_member

    try:  # its declared size checked first: never a decompression bomb in memory
        config = json.loads(read_small_member(path, "config.json", fmt="keras"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: no readable config.json in the archive ({exc})") from None
    return model_config_interface(config)


def legacy_h5_interface(path: Path) -> Doc:
    """The interface of a legacy full-model `.h5` file, from its ``model_config`` attribute.
    A file reaching other files is refused first (containment.check_h5)."""
    import h5py

    _check_h5(path, "h5")
    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as exc:
        raise ValueError(f"{path}: not an HDF5 file ({exc})") from None
    if raw is None:
        raise ValueError(f"{path}: no model_config attribute (a weights-only file?)")
    config = json.loads(raw.decode("utf8") if isinstance(raw, bytes) else raw)
    return model_config_interface(config)


def checkpoint_interface(prefix: Path | str) -> Doc:
    """A TensorFlow checkpoint's variables (key -> dtype, shape), read from its index.

    Object-based keys lose their ``/.ATTRIBUTES/VARIABLE_VALUE`` suffix.
    """
    from .._tf import import_tensorflow

    tf = import_tensorflow()
    reader = tf.train.load_checkpoint(str(prefix))
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    found: Doc = {}
    for key in sorted(shapes):
        if key == OBJECT_GRAPH_KEY:
            continue
        name = key[: -len(VALUE_SUFFIX)] if key.endswith(VALUE_SUFFIX) else key
        found[name] = {"dtype": dtypes[key].name, "shape": [int(d) for d in shapes[key]]}
    return {"variables": found}


def weights_h5_interface(path: Path) -> Doc:
    """A Keras `.weights.h5` file's datasets (path -> dtype, shape), or a sharded one's
    (``model.weights.json`` and its shards: the same document); refused as
    `legacy_h5_interface`."""
    import h5py

    if path.suffix == ".json":  # sharded: the same datasets, over the manifest's shards
        from ..formats.shards import read_sharded_weights

        saved = read_sharded_weights(path, fmt="weights_h5", allow=False)
        return {"variables": {name: {"dtype": dtype.name, "shape": list(shape)}
                              for name, (shape, dtype) in sorted(saved.entries.items())}}
    _check_h5(path, "weights_h5")
    found: Doc = {}
    try:
        with h5py.File(path, "r") as f:
            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    found[name] = {"dtype": obj.dtype.name, "shape": list(obj.shape)}

            f.visititems(visit)
    except OSError as exc:
        raise ValueError(f"{path}: not an HDF5 file ({exc})") from None
    return {"variables": dict(sorted(found.items()))}


def _check_h5(path: Path, fmt: str) -> None:
    """containment.check_h5 on a file h5py can open (the readers name other problems)."""
    import h5py

    from ..formats.containment import check_h5

    if h5py.is_hdf5(path):
        check_h5(path, source=path, fmt=fmt)
