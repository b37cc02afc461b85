"""What a restore reads must come from the artifact, and what it allocates must be what the files
hold (issue 14): guards run before TensorFlow, Keras or h5py touch an untrusted file.

* **paths**: every file under the artifact directory resolves (realpath) inside it (no symlink
  out of it, no symlinked ``variables/``), and so does every file a ``checkpoint`` state file
  names (no absolute or ``..`` prefix);
* **HDF5** (the plugin's own h5py readers): no external link, no link class other than hard
  and soft, no external storage, no virtual dataset (each reads another file's bytes), and no
  dataset declaring more bytes than it stores (a billion fill-value elements);
* **zip** (``.keras``): a member is refused from its declared sizes before it is read (Keras'
  own decompression-bomb thresholds), and spilled in chunks to an anonymous temporary file, so
  it is never held whole in memory.

Each refusal names the file, the feature and the opt-in; the test's
``@pytest.mark.persist(unsafe=True)`` (``allow=True`` here) lifts it. Not a sandbox: see the
README's "Bad input" section.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from typing import IO, Any, NoReturn

from ..errors import ModelPersistError

OPT_IN = ("If you trust this file, opt in for this test only: "
          "@pytest.mark.persist(unsafe=True)")

#: A zip member expanding to more than this and to more than MAX_EXPANSION times its stored
#: size is a decompression bomb: the thresholds Keras' own ``.keras`` extraction applies
#: (keras/src/saving/saving_lib.py, ``_reject_zip_extract_bomb``).
BOMB_FLOOR_BYTES = 1 << 28  # 256 MiB
MAX_EXPANSION = 100
#: A member read whole into memory (``config.json``) may declare at most this many bytes.
MAX_SMALL_MEMBER_BYTES = 64 << 20
_CHUNK = 1 << 20


class UnsafeArtifactError(ModelPersistError, PermissionError):
    """An artifact whose files reach outside it or declare what they do not hold; refused
    without the test's opt-in."""


def refuse(path: object, feature: str, *, fmt: str) -> NoReturn:
    """Raise UnsafeArtifactError naming the file, the feature, the format and the opt-in."""
    raise UnsafeArtifactError(f"{path}: {feature}; refused by default (format {fmt!r}). {OPT_IN}")


# ---- paths ------------------------------------------------------------------------------------


def _inside(path: str | os.PathLike[str], root: str) -> bool:
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def check_tree(directory: str | os.PathLike[str], *, fmt: str, allow: bool = False) -> None:
    """Refuse an artifact directory holding a symlink that resolves outside it (a symlinked
    ``variables/`` directory, a model file pointing at another file), or a special file.

    The directory itself may be a symlink (an archive checked out elsewhere): its target is
    the root. Nothing is opened.
    """
    if allow:
        return
    root = os.path.realpath(directory)
    for current, dirs, files in os.walk(root):  # os.walk does not descend into symlinks
        for name in [*dirs, *files]:
            path = os.path.join(current, name)
            if os.path.islink(path) and not _inside(path, root):
                refuse(path, f"a symbolic link to {os.path.realpath(path)}, outside the "
                             f"artifact directory {root}", fmt=fmt)
            if name in files and os.path.exists(path) and not (
                    os.path.isfile(path) or os.path.isdir(path)):
                refuse(path, "not a regular file (a FIFO, device or socket would block or "
                             "read another device)", fmt=fmt)


def check_inside(paths: Iterable[str | os.PathLike[str]], directory: str | os.PathLike[str], *,
                 fmt: str, named_by: str, allow: bool = False) -> None:
    """Refuse when a path the restore will read (named by ``named_by``: a ``checkpoint`` state
    file, say) resolves outside ``directory``."""
    if allow:
        return
    root = os.path.realpath(directory)
    for path in paths:
        if not _inside(path, root):
            refuse(named_by, f"names {path} (resolving to {os.path.realpath(path)}), outside "
                             f"the artifact directory {root}", fmt=fmt)


def checkpoint_files(prefix: str) -> list[str]:
    """The files TensorFlow reads for checkpoint ``prefix``: index, meta, data shards."""
    parent, stem = os.path.split(prefix)
    shards = [os.path.join(parent, n) for n in _listdir(parent)
              if n.startswith(f"{stem}.data-")]
    return [prefix, f"{prefix}.index", f"{prefix}.meta", *shards]


def _listdir(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory or "."))
    except OSError:
        return []


def contained_prefix(prefix: str, directory: str | os.PathLike[str], *, fmt: str,
                     allow: bool = False) -> str:
    """``prefix`` (a checkpoint the state file or ``checkpoint=`` picked) when all its files
    resolve inside ``directory``; UnsafeArtifactError otherwise."""
    check_inside(checkpoint_files(prefix), directory, fmt=fmt, allow=allow,
                 named_by=f"the checkpoint state in {directory}")
    return prefix


# ---- zip archives -----------------------------------------------------------------------------


def check_member(archive: zipfile.ZipFile, name: str, *, source: object, fmt: str,
                 allow: bool = False, limit: int | None = None) -> zipfile.ZipInfo:
    """The member's ZipInfo once its declared sizes pass: not a bomb (BOMB_FLOOR_BYTES and
    MAX_EXPANSION), at most ``limit`` bytes when given. KeyError when it is absent."""
    info = archive.getinfo(name)
    if allow:
        return info
    declared, stored = info.file_size, max(info.compress_size, 1)
    if declared > BOMB_FLOOR_BYTES and declared > MAX_EXPANSION * stored:
        refuse(f"{source}:{name}", f"a zip member declaring {declared:,} bytes stored in "
                                   f"{info.compress_size:,} (x{declared // stored:,}): a "
                                   "decompression bomb", fmt=fmt)
    if limit is not None and declared > limit:
        refuse(f"{source}:{name}", f"a zip member declaring {declared:,} bytes where at most "
                                   f"{limit:,} are expected", fmt=fmt)
    return info


def read_small_member(path: str | os.PathLike[str], name: str, *, fmt: str,
                      allow: bool = False) -> bytes:
    """A small member (``config.json``) of a zip archive, read whole after its declared size
    passed (MAX_SMALL_MEMBER_BYTES), and never more than it declared."""
    with zipfile.ZipFile(path) as archive:
        info = check_member(archive, name, source=path, fmt=fmt, allow=allow,
                            limit=MAX_SMALL_MEMBER_BYTES)
        with archive.open(info) as member:
            return member.read(info.file_size)


def spill_member(path: str | os.PathLike[str], name: str, *, fmt: str,
                 allow: bool = False) -> IO[bytes]:
    """A zip member (``model.weights.h5`` of a ``.keras``) as an anonymous temporary file.

    Its declared sizes are checked first (check_member); it is then copied in 1 MiB chunks,
    never more than it declared, so memory stays bounded whatever it expands to. The file is
    deleted when closed or garbage-collected; returned positioned at 0.
    """
    spill = tempfile.TemporaryFile(prefix="modelpersist-member-")
    try:
        with zipfile.ZipFile(path) as archive:
            info = check_member(archive, name, source=path, fmt=fmt, allow=allow)
            with archive.open(info) as member:
                shutil.copyfileobj(_bounded(member, info.file_size), spill, _CHUNK)
        spill.seek(0)
    except BaseException:
        spill.close()
        raise
    return spill


class _bounded:
    """A reader giving at most ``limit`` bytes of ``stream`` (a lying zip header)."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream, self._left = stream, limit

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        data = self._stream.read(size) if size else b""
        self._left -= len(data)
        return data


# ---- HDF5 -------------------------------------------------------------------------------------


def check_h5(file: Any, *, source: object, fmt: str, allow: bool = False) -> None:
    """Refuse an HDF5 file (a path or an open file object) that reads other files or declares
    data it does not store, before any dataset is read.

    Walks every link without following it (``visititems_links``): external links and
    user-defined links are refused, soft links are fine (they stay in the file, and every
    object they can reach is walked). Every dataset: no virtual dataset, no external storage,
    and its declared bytes at most what it stores (times MAX_EXPANSION for a filtered
    dataset, above BOMB_FLOOR_BYTES).
    """
    if allow:
        return
    import h5py

    problems: list[str] = []

    def visit(name: str, link: Any) -> None:
        if isinstance(link, h5py.ExternalLink):
            problems.append(f"an external link {name!r} -> {link.filename}:{link.path}")
        elif not isinstance(link, (h5py.HardLink, h5py.SoftLink)):
            problems.append(f"a {type(link).__name__} {name!r}")

    with h5py.File(file, "r") as f:
        f.visititems_links(visit)
        f.visititems(lambda name, obj: _check_dataset(name, obj, problems))
    if problems:
        shown = "; ".join(problems[:3]) + (f" and {len(problems) - 3} more"
                                           if len(problems) > 3 else "")
        refuse(source, f"the HDF5 file holds {shown}", fmt=fmt)


def _check_dataset(name: str, obj: Any, problems: list[str]) -> None:
    import h5py

    if not isinstance(obj, h5py.Dataset):
        return
    plist = obj.id.get_create_plist()
    if obj.is_virtual:
        sources = {plist.get_virtual_filename(i) for i in range(plist.get_virtual_count())}
        problems.append(f"a virtual dataset {name!r} mapping {', '.join(sorted(sources))}")
    elif plist.get_external_count():
        files = [plist.get_external(i)[0].decode("utf8", "replace")
                 for i in range(plist.get_external_count())]
        problems.append(f"a dataset {name!r} stored in external files {', '.join(files)}")
    elif obj.shape is not None and obj.dtype.kind != "O":  # not empty, not variable-length
        declared, stored = int(obj.size) * obj.dtype.itemsize, int(obj.id.get_storage_size())
        filtered = plist.get_nfilters() > 0
        if (declared > stored and not filtered) or (
                filtered and declared > BOMB_FLOOR_BYTES and declared > MAX_EXPANSION * stored):
            problems.append(f"a dataset {name!r} declaring {declared:,} bytes "
                            f"({obj.dtype}{list(obj.shape)}) but storing {stored:,}")


# ---- TensorFlow checkpoints -------------------------------------------------------------------


def check_checkpoint(prefix: str | os.PathLike[str], directory: str | os.PathLike[str], *,
                     fmt: str, allow: bool = False) -> None:
    """Refuse a checkpoint whose files resolve outside ``directory``, or whose index declares
    a tensor of more bytes than its data files hold in all (a shape TensorFlow would allocate
    before finding the data short). Reads the index only; no tensor is allocated. A sharded
    checkpoint missing a data file is an ArtifactError naming it, allowed or not."""
    from .shards import check_complete

    check_complete(prefix)
    if allow:
        return
    from .._tf import import_tensorflow

    prefix = str(prefix)
    contained_prefix(prefix, directory, fmt=fmt)
    files = checkpoint_files(prefix)[3:]
    if not os.path.exists(f"{prefix}.index") or not files:
        return  # TensorFlow names what is missing itself
    held = sum(os.path.getsize(f) for f in files)
    tf = import_tensorflow()
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    for key, shape in reader.get_variable_to_shape_map().items():
        dtype = dtypes[key]
        if dtype == tf.string or not dtype.is_numpy_compatible:
            continue  # variable-length: no size to declare
        declared = dtype.size
        for dim in shape:
            declared *= max(int(dim), 0)
        if declared > held:
            refuse(f"{prefix}.index", f"its entry {key!r} declares {dtype.name}{list(shape)} "
                                      f"({declared:,} bytes) but the data files hold "
                                      f"{held:,} bytes in all (crafted or corrupt; refused "
                                      "before anything is allocated)", fmt=fmt)


# ---- Keras model configs ----------------------------------------------------------------------

#: No size in a layer's config (``units``, ``filters``, ``input_dim`` ...) may exceed this.
MAX_CONFIG_SIZE = 1 << 24
#: Nor may the estimated bytes of the variables Keras would build from the config.
MAX_PARAMETER_BYTES = 4 << 30
#: Config keys holding sizes: a key is a size when one of its ``_``-parts is one of these.
_SIZE_WORDS = frozenset({"units", "filters", "dim", "heads", "tokens", "bins", "size", "shape",
                         "length", "multiplier", "n"})
#: Built-in layers whose variables scale with the width of their input (the previous layer's).
_TIMES_INPUT = frozenset({"Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D",
                          "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
                          "SeparableConv1D", "SeparableConv2D", "MultiHeadAttention"})
#: Recurrent layers: a kernel input x (gates * units) and a recurrent kernel units x units.
_RECURRENT = frozenset({"LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"})
#: Layers whose variables are the product of their sizes (an embedding is input_dim x
#: output_dim).
_PRODUCT = frozenset({"Embedding"})
_WIDTH_KEYS = ("units", "filters", "output_dim")


def _sizes(config: Any) -> dict[str, list[int]]:
    """The size values of one layer's own config (nested layers excluded), by key."""
    found: dict[str, list[int]] = {}
    for key, value in (config.items() if isinstance(config, dict) else ()):
        if not _SIZE_WORDS & set(str(key).lower().split("_")):
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
        if ints:
            found[str(key)] = ints
    return found


def _layers(config: Any) -> Iterable[tuple[str, Any]]:
    """(class name, config) of every serialized layer, nested ones included, in order."""
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config.get("config"), dict):
            yield str(config["class_name"]), config["config"]
        for value in config.values():
            yield from _layers(value)
    elif isinstance(config, list):
        for item in config:
            yield from _layers(item)


def estimate_parameters(config: Any) -> tuple[int, str | None]:
    """(estimated parameter count, the first oversized ``layer.key=value`` or None).

    Per layer: the product of its sizes, times the previous layer's width for the layers in
    _TIMES_INPUT (a Dense kernel is input x units), 4 x units x (width + units) for recurrent
    layers, the product alone for _PRODUCT; the largest size alone for other layers (a
    custom layer's hyperparameters are not its shapes). An estimate, meant to stop a crafted
    config before Keras allocates it, not to count honest models exactly.
    """
    total, width = 0, 1
    for cls, cfg in _layers(config):
        sizes = _sizes(cfg)
        for key, values in sizes.items():
            if any(v > MAX_CONFIG_SIZE for v in values):
                return total, f"{cfg.get('name', cls)}.{key}={max(values)}"
        if cls == "InputLayer":
            shape = sizes.get("batch_shape") or sizes.get("batch_input_shape") or [1]
            width = max(shape[-1], 1)
            continue
        flat = [v for values in sizes.values() for v in values if v > 0]
        if cls in _RECURRENT and "units" in sizes:
            total += 4 * sizes["units"][-1] * (width + sizes["units"][-1])
        elif cls in _TIMES_INPUT or cls in _PRODUCT:
            count = width if cls in _TIMES_INPUT else 1
            for v in flat:
                count *= v
            total += count
        elif flat:
            total += max(flat)
        width = next((sizes[k][-1] for k in _WIDTH_KEYS if k in sizes), width)
    return total, None


def check_keras_config(config: Any, *, source: object, fmt: str, allow: bool = False) -> None:
    """Refuse a Keras model config whose sizes would make Keras allocate more than
    MAX_CONFIG_SIZE per size or MAX_PARAMETER_BYTES in all, before it builds anything."""
    if allow:
        return
    params, oversized = estimate_parameters(config)
    if oversized is not None:
        refuse(source, f"the model config sets {oversized}, beyond the limit of "
                       f"{MAX_CONFIG_SIZE:,} for a layer size", fmt=fmt)
    if params * 4 > MAX_PARAMETER_BYTES:
        refuse(source, f"the model config would build about {params:,} parameters "
                       f"(~{params * 4 / 2**30:.1f} GiB as float32), beyond the limit of "
                       f"{MAX_PARAMETER_BYTES / 2**30:g} GiB", fmt=fmt)


def check_keras_file(path: str | os.PathLike[str], *, fmt: str, allow: bool = False) -> None:
    """The guards a Keras model file gets before ``load_model``: a ``.keras`` archive's
    members' declared sizes and its ``config.json``; a legacy ``.h5`` file's links, datasets
    and ``model_config``."""
    if allow:
        return
    import json

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                check_member(archive, name, source=path, fmt=fmt)
        raw = read_small_member(path, "config.json", fmt=fmt)
    else:
        check_h5(path, source=path, fmt=fmt)
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
        if raw is None:
            return
    check_keras_config(json.loads(raw), source=path, fmt=fmt)
