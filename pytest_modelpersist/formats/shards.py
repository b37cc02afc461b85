"""Sharded saves: the ``max_shard_mb`` save option, what each library version can shard, and
the files a sharded artifact is made of.

A format that can split its weights declares ``max_shard_mb`` in its `save_options`
(tf_checkpoint, savedmodel, weights_h5); the ini ``persist_max_shard_mb``, the marker's
``max_shard_mb`` and ``persist.save(..., max_shard_mb=)`` reach it as a save option. Where the
format or the installed library cannot shard, the save stays whole and the artifact's meta
says why (`UNSHARDED`): `persist.save` turns that into one `PersistWarning` for the item.

TensorFlow's checkpoint writer takes a sharding callback from TF 2.16
(``experimental_sharding_callback`` of ``tf.train.CheckpointOptions`` /
``tf.saved_model.SaveOptions``; ``tf.train.experimental.MaxShardSizePolicy`` slices tensors
to fill each shard): `tf_policy` packs whole tensors and slices only one larger than the
limit. Keras 3 (3.10 on) writes ``model.weights.json`` and
``model_NNNNN.weights.h5`` shards for ``save_weights(..., max_shard_size=GB)``; it does not
split a variable, and refuses one larger than the limit.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, PersistWarning
from .containment import check_inside, refuse

#: The save option's name (a format declares it in `save_options` to take it).
OPTION = "max_shard_mb"
#: `Artifact.meta` keys: why a save asked to shard wrote whole files; how many shards it wrote.
UNSHARDED, SHARDS = "unsharded", "shards"
#: One MB of the option: 2**20 bytes, as Keras counts its GB (1024**3).
MB = 1 << 20
#: Why a built-in format that takes no `max_shard_mb` writes whole files.
WHOLE = {
    "ckpt": "a TF1 Saver shards by device, never by size: one data file on one CPU",
    "h5": "legacy full-model HDF5 is one file (Keras shards weights files only)",
    "keras": "a .keras archive is one zip file (Keras' model.save takes no max_shard_size)",
    "pb": "a frozen GraphDef is one protobuf message",
}
#: A sharded weights manifest bigger than this is not a manifest (refused unless allowed).
MAX_MANIFEST_BYTES = 16 << 20
_DATA_FILE = re.compile(r"\.data-(\d{5})-of-(\d{5})$")


def check_size(value: Any, source: str) -> float:
    """The option's value as MB > 0 (a finite number); ValueError naming `source` if not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value > 0):
        raise ValueError(f"{source}: expected a number of MB > 0 (2**20 bytes), got {value!r}")
    return float(value)


def save_options_of(fmt: Any, options: Any, given: dict[str, Any]
                    ) -> tuple[dict[str, Any], str | None]:
    """The keywords of one save in format `fmt` under CheckOptions `options`: the ini's and
    marker's converter options it declares, then the call's `given`; ``max_shard_mb`` from the
    call, else the test's (ini, marker). Returns them and, when sharding was asked of a format
    that takes no `max_shard_mb`, why it writes whole files. ValueError for a bad size."""
    declared = fmt.save_options
    found = {**{k: v for k, v in options.convert.items() if k in declared}, **given}
    size = found.pop(OPTION, options.max_shard_mb)
    if size is None:
        return found, None
    size = check_size(size, OPTION)
    if OPTION not in declared:
        return found, whole_reason(fmt.name)
    return {**found, OPTION: size}, None


def warn_whole(artifact: Any, why: str | None) -> Any:
    """`artifact`, after one PersistWarning when a save asked to shard wrote whole files (the
    format's reason `why`, or the one the save recorded in the artifact's meta)."""
    why = why or artifact.meta.get(UNSHARDED)
    if why:
        warnings.warn(PersistWarning(f"[{artifact.format}] {OPTION} asked for shards, but the "
                                     f"save wrote whole files: {why}"), stacklevel=3)
    return artifact


def whole_reason(fmt: str) -> str:
    """Why format `fmt`, which declares no `max_shard_mb`, writes whole files."""
    return WHOLE.get(fmt, f"the format {fmt!r} takes no {OPTION} save option")


def tf_policy(max_shard_mb: float) -> tuple[Any, str | None]:
    """(a sharding callback for TF's checkpoint writer, None), or (None, why this TensorFlow
    cannot shard). The callback packs whole tensors into shards of at most the size and slices
    only a tensor bigger than that (by TF's MaxShardSizePolicy): TF's policy alone slices any
    tensor that straddles two shards, and each slice is a copy held during the save (a 2 GB
    model's tf_checkpoint check peaked at 2.25x the model's bytes that way, 1.56x whole)."""
    from .._tf import import_tensorflow

    tf = import_tensorflow()
    slicer = getattr(tf.train.experimental, "MaxShardSizePolicy", None)
    if slicer is None:
        return None, (f"TensorFlow {tf.__version__} cannot shard checkpoints "
                      "(tf.train.experimental.MaxShardSizePolicy is TF >= 2.16)")
    limit = max(1, int(check_size(max_shard_mb, OPTION) * MB))
    slice_big: Any = slicer(limit)

    class WholeTensors(tf.train.experimental.ShardingCallback):  # type: ignore[misc,name-defined]
        @property
        def description(self) -> str:
            return f"whole tensors in shards of at most {limit} bytes; bigger ones sliced"

        def __call__(self, tensors: Any) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = [{}]
            room, big = limit, []
            for st in tensors:
                size = _tensor_bytes(st)
                if size > limit:
                    big.append(st)
                    continue
                if size > room and found[-1]:
                    found.append({})
                    room = limit
                found[-1].setdefault(st.checkpoint_key, {})[st.slice_spec] = st.tensor
                room -= size
            for st in big:  # alone, sliced into shards of the size
                found.extend(slice_big([st]))
            return [shard for shard in found if shard]

    return WholeTensors(), None


def _tensor_bytes(st: Any) -> int:
    """Bytes a ShardableTensor adds to a shard: shape x dtype, a string's own bytes when it
    can be read here (eager), else 0 (as TF's policy counts the object graph)."""
    count = st.shape.num_elements() if st.shape.is_fully_defined() else None
    if st.dtype.is_numpy_compatible and st.dtype.name != "string":
        return int(count or 0) * st.dtype.size
    try:
        values = st.tensor.numpy()
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        return 0
    return sum(len(v) for v in (values.ravel() if hasattr(values, "ravel") else [values]))


def tf_options(max_shard_mb: float | None, *, saved_model: bool = False
               ) -> tuple[Any, str | None]:
    """(tf.train.CheckpointOptions, or with `saved_model` tf.saved_model.SaveOptions, sharding
    at the size; None without a size), and why a size asked for cannot shard (or None)."""
    if max_shard_mb is None:
        return None, None
    policy, why = tf_policy(max_shard_mb)
    if policy is None:
        return None, why
    from .._tf import import_tensorflow

    tf = import_tensorflow()
    make = tf.saved_model.SaveOptions if saved_model else tf.train.CheckpointOptions
    return make(experimental_sharding_callback=policy), None


def keras_shards(model: Any) -> str | None:
    """Why `model`'s save_weights cannot shard (Keras 2, or a Keras 3 before 3.10), or None."""
    if "max_shard_size" in inspect.signature(model.save_weights).parameters:
        return None
    package = sys.modules.get(type(model).__module__.split(".")[0])
    return (f"Keras {getattr(package, '__version__', '(this version)')}'s save_weights takes "
            "no max_shard_size (Keras >= 3.10 shards weights files)")


def save_keras_weights(model: Any, directory: Path, name: str,
                       max_shard_mb: float | None) -> tuple[Path, str | None]:
    """`model.save_weights` into `directory`: as `name`, or with `max_shard_mb` (Keras >=
    3.10) as ``model.weights.json`` naming ``model_NNNNN.weights.h5`` shards. Returns the
    file written and why a size asked for wrote a whole file (None: it did not)."""
    why = None if max_shard_mb is None else keras_shards(model)
    if max_shard_mb is None or why is not None:
        model.save_weights(str(directory / name))
        return directory / name, why
    path = directory / "model.weights.json"
    model.save_weights(str(path), max_shard_size=check_size(max_shard_mb, OPTION) * MB / 1024**3)
    return path, None


def mark(artifact: Any, files: list[Path], why: str | None) -> None:
    """Record in `artifact`'s meta why a save asked to shard wrote whole files, or the bytes of
    each shard it wrote (by path in the artifact: a restore checks them, `check_recorded`)."""
    if why is not None:
        artifact.meta[UNSHARDED] = why
    else:
        artifact.meta[SHARDS] = {p.relative_to(artifact.directory).as_posix(): p.stat().st_size
                                 for p in files}


def check_recorded(artifact: Any) -> None:
    """ArtifactError naming the first shard the save recorded that is missing, or whose bytes
    differ from what the save wrote (a truncated or replaced shard): the libraries' own
    messages for it ("Read less bytes than requested") name no file."""
    recorded = artifact.meta.get(SHARDS)
    if not isinstance(recorded, dict):
        return
    for name, size in sorted(recorded.items()):
        path = Path(artifact.directory, name)
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ArtifactError(f"the manifest names the shard {name!r}, outside the artifact")
        if not path.is_file():
            raise ArtifactError(f"shard {path} is missing ({len(recorded)} shards were "
                                "written): a sharded artifact needs every shard")
        if path.stat().st_size != size:
            raise ArtifactError(f"shard {path} holds {path.stat().st_size:,} bytes, the save "
                                f"wrote {size:,} (truncated or replaced)")


def data_files(prefix: str | os.PathLike[str]) -> list[Path]:
    """The data files of checkpoint `prefix` (``<prefix>.data-NNNNN-of-MMMMM``), sorted."""
    path = Path(prefix)
    return sorted(p for p in path.parent.glob(f"{path.name}.data-*")
                  if _DATA_FILE.search(p.name))


def check_complete(prefix: str | os.PathLike[str]) -> None:
    """ArtifactError naming the first missing data file of checkpoint `prefix`: every shard
    ``00000`` .. ``M-1`` of ``-of-M`` must be there (TensorFlow's own message names a file but
    not that the others are there)."""
    found = data_files(prefix)
    counts = {int(m.group(2)) for p in found if (m := _DATA_FILE.search(p.name))}
    for total in sorted(counts):
        for i in range(total):
            name = f"{Path(prefix).name}.data-{i:05d}-of-{total:05d}"
            if not (Path(prefix).parent / name).exists():
                raise ArtifactError(f"checkpoint shard {Path(prefix).parent / name} is "
                                    f"missing ({len(found)} of {total} data files there): a "
                                    "sharded checkpoint needs every shard")


def read_manifest(path: Path, *, fmt: str, allow: bool) -> dict[str, list[str]]:
    """A Keras sharded weights manifest (``model.weights.json``): dataset group -> the shard
    files holding it. Every shard must be a plain file name in the manifest's directory
    (refused otherwise, unless `allow`) and be there (ArtifactError naming it)."""
    if not allow and path.stat().st_size > MAX_MANIFEST_BYTES:
        refuse(path, f"a weights manifest of {path.stat().st_size:,} bytes (over "
                     f"{MAX_MANIFEST_BYTES:,}: not what Keras writes)", fmt=fmt)
    try:
        weight_map = json.loads(path.read_text())["weight_map"]
        groups = {str(k): [v] if isinstance(v, str) else list(v) for k, v in weight_map.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"{path} is not a Keras sharded weights manifest "
                            f"({type(exc).__name__}: {exc})") from None
    for names in groups.values():
        for name in names:
            if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
                if not allow:
                    refuse(path, f"names the shard {name!r}, not a file beside it", fmt=fmt)
                continue
            shard = path.with_name(name)
            check_inside([shard], path.parent, fmt=fmt, named_by=str(path), allow=allow)
            if not shard.is_file():
                raise ArtifactError(f"weights shard {shard} named by {path.name} is "
                                    "missing: a sharded weights file needs every shard")
    return groups


def read_sharded_weights(path: Path, *, fmt: str, allow: bool) -> Any:
    """The datasets of every shard a Keras weights manifest names, as one SavedVariables
    (names as in an unsharded ``.weights.h5``: ``layers/dense/vars/0``). Each shard passes
    the HDF5 screen (containment.check_h5) before any dataset is read."""
    from ..restore.saved import SavedVariables
    from .keras_formats import read_weights_file

    groups = read_manifest(path, fmt=fmt, allow=allow)
    entries: dict[str, tuple[tuple[int, ...], Any]] = {}
    owner: dict[str, Any] = {}
    for name in sorted({n for names in groups.values() for n in names}):
        try:
            shard = read_weights_file(path.with_name(name), fmt=fmt, allow=allow)
        except OSError as exc:  # h5py's words name no file
            raise ArtifactError(f"weights shard {path.with_name(name)}: {exc}") from None
        for key, spec in shard.entries.items():
            if key in entries:
                raise ArtifactError(f"{path}: {key!r} is in two shards "
                                    f"({owner[key].source} and {shard.source})")
            entries[key], owner[key] = spec, shard

    def read(name: str) -> Any:
        return owner[name].read(name)

    return SavedVariables(entries, read, source=str(path))
