"""Golden files: where they live, how they are written and read, what they record.

A golden is two files in the golden directory of its test module:

* ``<name>.golden.json``: a small text sidecar a reviewer reads in a pull-request diff: per
  output its shape, dtype, CRC-32 and summary statistics; the versions, device and TF32 state
  it was recorded with; a checksum of the inputs; and the name of its arrays file. Replacing
  the sidecar is the commit point of an update.
* ``<name>.<content-hash>.npz``: the arrays, uncompressed, read with ``allow_pickle=False``.

Writes are atomic (temp file in the same directory, fsync, rename; the sidecar last; the old
arrays file removed only after) and serialized per golden with a lock, so a killed run never
leaves a half-written golden and concurrent xdist workers lose nothing. No numerics here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import re
import stat
import sys
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._atomic import atomic_write
from ._lazy import lazy_module
from .golden_paths import (  # noqa: F401  - re-exported: the golden file API in one place
    LFS_POINTER,
    MAX_NAME,
    SIDECAR_SUFFIX,
    GoldenError,
    golden_dir_for,
    golden_lock,
    goldens_in,
    is_arrays_name,
    read_sidecar,
    safe_name,
    sidecar_path,
    stem_of,
    stray_arrays,
)

if TYPE_CHECKING:
    import numpy as np

    from . import byte_strings
else:  # numpy loads when a golden is first read or written, not when pytest starts
    np = lazy_module("numpy")
    byte_strings = lazy_module("pytest_modelpersist.byte_strings")

FORMAT_VERSION = 1


# ---- what a golden records ------------------------------------------------------------------


def inputs_checksum(inputs: Sequence[np.ndarray]) -> str:
    """CRC-32 over the inputs' dtypes, shapes and bytes (to tell input from model changes)."""
    crc = 0
    for x in inputs:
        x = np.ascontiguousarray(x)
        crc = zlib.crc32(f"{x.dtype.str}{x.shape}".encode(), crc)
        crc = zlib.crc32(memoryview(x).cast("B") if x.size else b"", crc)  # type: ignore[arg-type]
    return f"crc32:{crc:08x}"


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Versions, device and TF32 state of this process (TensorFlow only if already loaded)."""
    env: dict[str, Any] = {
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
        "device": f"CPU: {_cpu_name()}",
    }
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        env["tensorflow"] = tf.__version__
        keras = sys.modules.get("keras")
        env["keras"] = getattr(keras, "__version__", None)
        try:
            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                env["device"] = f"GPU: {details.get('device_name', gpus[0].name)}"
            env["tf32"] = bool(tf.config.experimental.tensor_float_32_execution_enabled())
        except Exception:  # device queries are best effort
            pass
    return env


def summary(a: np.ndarray) -> dict[str, Any]:
    """Shape, dtype and statistics of one array, for the reviewer-readable sidecar."""
    info: dict[str, Any] = {"shape": list(a.shape), "dtype": a.dtype.name}
    if a.size and a.dtype.kind in "biuf":
        v = a.astype(np.float64) if a.dtype.kind != "f" else a
        finite = np.isfinite(v) if a.dtype.kind == "f" else None
        vals = v[finite] if finite is not None else v
        if vals.size:
            # float64 accumulation: float16/float32 squares overflow for large finite values
            # (beyond 1e154 even float64's do: the sidecar then says inf, without a warning)
            with np.errstate(over="ignore", invalid="ignore"):
                info.update(min=float(vals.min()), max=float(vals.max()),
                            mean=float(vals.mean(dtype=np.float64)),
                            std=float(vals.std(dtype=np.float64)))
        if finite is not None:
            info.update(nan=int(np.isnan(v).sum()), inf=int(np.isinf(v).sum()))
    return info


# ---- reading --------------------------------------------------------------------------------


@dataclass
class Golden:
    """A golden read from disk: its sidecar document and its arrays, in order."""

    sidecar: Path
    arrays_path: Path
    doc: dict[str, Any]
    arrays: list[np.ndarray]

    @property
    def names(self) -> list[str]:
        return list(self.doc["outputs"])

    @property
    def recorded_with(self) -> dict[str, Any]:
        return dict(self.doc.get("recorded_with", {}))


def _refuse(path: Path, cause: str) -> GoldenError:
    return GoldenError(f"golden {path}: {cause}")


def read_golden(sidecar: Path) -> Golden:
    """Read and validate a golden; GoldenError names the file and the cause."""
    sidecar = Path(sidecar)
    doc = read_sidecar(sidecar)
    try:
        outputs = doc["outputs"]
        arrays_name = doc["arrays"]
        if not isinstance(outputs, dict) or not isinstance(arrays_name, str):
            raise TypeError("'outputs' must be an object and 'arrays' a file name")
        for name, info in outputs.items():
            if not (isinstance(info, dict) and isinstance(info.get("dtype"), str)
                    and isinstance(info.get("shape"), list)
                    and all(type(d) is int and d >= 0 for d in info["shape"])):
                raise TypeError(f"output {name!r} needs a 'shape' (list of sizes) and a "
                                "'dtype' (name)")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _refuse(sidecar, f"the sidecar is not a valid golden document ({str(exc)[:200]})"
                      ) from None
    arrays_path = sidecar.parent / arrays_name
    if Path(arrays_name).name != arrays_name or not arrays_name.endswith(".npz"):
        raise _refuse(sidecar, f"names an arrays file outside its directory: {arrays_name!r}")
    arrays = read_arrays(arrays_path, expected=outputs)
    return Golden(sidecar, arrays_path, doc, arrays)


def read_arrays(path: Path, *, expected: Mapping[str, Mapping[str, Any]]) -> list[np.ndarray]:
    """The arrays of a golden `.npz`, checked against what its sidecar says they are."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block, /dev/zero never end
            raise _refuse(path, "the arrays file is not a regular file")
        with path.open("rb") as fh:
            head = fh.read(len(LFS_POINTER))
    except OSError as exc:
        raise _refuse(path, f"the arrays file is missing or unreadable ({exc.strerror or exc})"
                      ) from None
    if head.startswith(LFS_POINTER):
        raise _refuse(path, "is a Git LFS pointer, not the arrays: run `git lfs pull`")
    arrays: list[np.ndarray] = []
    try:
        with zipfile.ZipFile(path) as zf:
            crcs = {info.filename: info.CRC for info in zf.infolist()}
            members = [f"{name}.npy" for name in expected]
            if sorted(crcs) != sorted(members):
                raise _refuse(path, f"holds {sorted(crcs)} but its sidecar lists {members}")
            for name, info in expected.items():
                want = info.get("crc32")
                if want is not None and f"{crcs[name + '.npy']:08x}" != want:
                    raise _refuse(path, f"{name}: checksum {crcs[name + '.npy']:08x} differs "
                                        f"from the sidecar's {want} (the files disagree)")
            views = {name: _check_member(zf, path, name, info) for name, info in expected.items()}
            with np.load(path, allow_pickle=False) as npz:
                for name, info in expected.items():
                    arr = npz[name]  # reading the whole member verifies its CRC-32
                    if views[name] == byte_strings.DTYPE_NAME:  # bytes ending in NULs
                        arr = byte_strings.decode(arr)
                    elif views[name] is not None:  # bfloat16 & co. are stored as raw void bytes
                        arr = arr.view(views[name])
                    if list(arr.shape) != list(info["shape"]) or _dtype_name(arr) != info["dtype"]:
                        raise _refuse(path, f"{name} is {_dtype_name(arr)}{list(arr.shape)} but "
                                            f"its sidecar says {info['dtype']}"
                                            f"{list(info['shape'])}")
                    arrays.append(arr)
    except GoldenError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise _refuse(path, "holds object arrays, refused (it would need unpickling, "
                                "which can run code)") from None
        raise _refuse(path, f"unreadable arrays ({exc})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, NotImplementedError,
            zlib.error) as exc:
        # NotImplementedError: zipfile on a member whose (damaged) header names an unknown
        # compression method.
        raise _refuse(path, f"corrupt or truncated arrays file ({type(exc).__name__}: {exc})"
                      ) from None
    return arrays


def _dtype_name(arr: np.ndarray) -> str:
    """How a sidecar names `arr`'s dtype (exact byte strings: byte_strings.DTYPE_NAME)."""
    return byte_strings.DTYPE_NAME if byte_strings.is_exact(arr) else arr.dtype.name


def _named_dtype(name: str) -> np.dtype[Any] | None:
    """The dtype a sidecar names; ml_dtypes' (bfloat16, float8_*) once ml_dtypes is imported."""
    for attempt in range(2):
        try:
            return np.dtype(name)
        except TypeError:
            if attempt:
                return None
            try:
                import ml_dtypes  # noqa: F401  - registers bfloat16 & co. with numpy
            except ImportError:
                return None
    return None  # pragma: no cover


def _check_member(zf: zipfile.ZipFile, path: Path, name: str,
                  info: Mapping[str, Any]) -> np.dtype[Any] | str | None:
    """Check one member's .npy header and size against the sidecar, before any data is read.

    So a crafted or damaged golden can neither make numpy unpickle (object arrays) nor allocate
    more than its sidecar declares (a huge shape in the header, a zip bomb). Returns the dtype
    to view the loaded array as when numpy stores it as raw bytes (bfloat16: void16),
    byte_strings.DTYPE_NAME for byte strings stored encoded (decode them), else None.
    """
    from numpy.lib import format as npy

    member = zf.getinfo(f"{name}.npy")
    with zf.open(member) as fh:
        version = npy.read_magic(fh)
        if version not in ((1, 0), (2, 0)):
            raise _refuse(path, f"{name}: unsupported .npy format version {version}")
        read_header = npy.read_array_header_1_0 if version == (1, 0) else (
            npy.read_array_header_2_0)
        shape, _fortran, dtype = read_header(fh)
        header_len = fh.tell()
    if dtype.hasobject:
        raise _refuse(path, f"{name} holds object arrays, refused (it would need unpickling, "
                            "which can run code)")
    view: np.dtype[Any] | str | None = None
    want = _named_dtype(info["dtype"])
    if info["dtype"] == byte_strings.DTYPE_NAME and dtype.kind == "S":
        view = byte_strings.DTYPE_NAME
    elif (want is not None and not want.hasobject and dtype.kind == "V" and dtype.names is None
            and want.name != dtype.name and want.itemsize == dtype.itemsize):
        view, dtype = want, want
    if list(shape) != list(info["shape"]) or (view != byte_strings.DTYPE_NAME
                                              and dtype.name != info["dtype"]):
        raise _refuse(path, f"{name} is {dtype.name}{list(shape)} but its sidecar says "
                            f"{info['dtype']}{list(info['shape'])}")
    data = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if member.file_size != header_len + data:
        raise _refuse(path, f"{name} holds {member.file_size - header_len} bytes of data where "
                            f"{info['dtype']}{list(shape)} needs {data}: truncated or corrupt")
    return view


# ---- writing --------------------------------------------------------------------------------


def write_golden(sidecar: Path, arrays: Sequence[np.ndarray], *, names: Sequence[str],
                 test: str, inputs_crc: str | None) -> Golden:
    """Record a golden atomically (call under golden_lock); returns it as read back."""
    sidecar = Path(sidecar)
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    arrays = [np.asarray(a) for a in arrays]
    if any(a.dtype.hasobject and not all(isinstance(v, bytes) for v in a.reshape(-1).tolist())
           for a in arrays):
        raise GoldenError(f"golden {sidecar}: object arrays cannot be stored safely")
    stem = sidecar.name[: -len(SIDECAR_SUFFIX)]
    # Exact byte strings keep their member name, encoded; the sidecar's dtype says so.
    members: dict[str, Any] = {n: byte_strings.encode(a) if byte_strings.is_exact(a) else a
                               for n, a in zip(names, arrays, strict=True)}
    crcs: dict[str, str] = {}

    def content_addressed(tmp: Path) -> Path:  # the arrays' name comes from their CRCs
        with zipfile.ZipFile(tmp) as zf:
            crcs.update({i.filename[:-4]: f"{i.CRC:08x}" for i in zf.infolist()})
        content = hashlib.sha256("".join(crcs[n] for n in names).encode()).hexdigest()[:12]
        return sidecar.parent / f"{stem}.{content}.npz"

    arrays_path = atomic_write(sidecar.parent / f"{stem}.npz",
                               lambda fh: np.savez(fh, **members), rename_to=content_addressed)
    from .interface_golden import by_toolchain

    previous = None
    interfaces = None  # the interfaces (interface_golden) outlive an outputs update
    with contextlib.suppress(GoldenError):
        old = read_sidecar(sidecar)
        # by toolchain, before recorded_with changes: an old sidecar's are its TF version's
        previous, interfaces = old.get("arrays"), by_toolchain(old)
    doc = {
        "golden_format": FORMAT_VERSION,
        "test": test,
        "arrays": arrays_path.name,
        "inputs": inputs_crc,
        "recorded_with": environment(),
        "outputs": {n: {**summary(a), "dtype": _dtype_name(a), "crc32": crcs[n]}
                    for n, a in zip(names, arrays, strict=True)},
    }
    if interfaces:
        doc["interfaces"] = interfaces
    text = dumps_readable(doc)
    atomic_write(sidecar, lambda fh: fh.write(text.encode()))
    # The old arrays go only if the old sidecar named this golden's own content-addressed file:
    # a damaged or crafted one may name another golden's arrays, or a path outside.
    if (isinstance(previous, str) and previous != arrays_path.name
            and is_arrays_name(stem, previous)):
        with contextlib.suppress(OSError):
            (sidecar.parent / previous).unlink()
    return Golden(sidecar, arrays_path, doc, arrays)


def dumps_readable(doc: Mapping[str, Any]) -> str:
    """JSON with one line per output field and short lists (shapes) kept on one line."""
    text = json.dumps(doc, indent=2, allow_nan=True)
    return re.sub(r"\[\s*([^\[\]{}]*?)\s*\]",
                  lambda m: "[" + re.sub(r"\s*\n\s*", " ", m.group(1)) + "]", text) + "\n"


def write_arrays(path: Path, arrays: Sequence[np.ndarray], names: Sequence[str]) -> None:
    """Write arrays as an uncompressed `.npz` atomically (the obtained outputs of a mismatch)."""
    members = byte_strings.pack(dict(zip(names, (np.asarray(a) for a in arrays), strict=True)))
    atomic_write(Path(path), lambda fh: np.savez(fh, **members))
