"""Golden paths: directories, safe names, the content-addressed pattern, bounded sidecar reads,
per-user locks and file modes. No numpy, no numerics.

Everything here treats the golden directory as untrusted input (a merge conflict, a checkout
of someone else's branch, a planted symlink): a sidecar is read only if it is a regular file of
bounded size, any error reading it is a GoldenError naming the file, and a path is deleted only
if it sits directly in the golden directory under the name the plugin itself would write.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import PersistFailure

SIDECAR_SUFFIX = ".golden.json"
OBTAINED_SUFFIX = ".obtained.npz"
MAX_NAME = 96
#: A sidecar is a few hundred bytes per output; anything larger is not one of ours.
MAX_SIDECAR_BYTES = 4 << 20
LFS_POINTER = b"version https://git-lfs"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+\-\[\]]")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}
_CONTENT_HASH = re.compile(r"\.[0-9a-f]{12}\.npz")


class GoldenError(PersistFailure):
    """A golden file that cannot be used (unreadable, inconsistent, unsafe)."""


def safe_name(name: str, *, max_len: int = MAX_NAME) -> str:
    """A file-name stem safe on every OS, unique for `name`.

    Characters outside ``[A-Za-z0-9_.=+-[]]`` become ``_`` (so ``/``, ``\\``, ``..`` and odd
    Unicode cannot escape the golden directory); a changed or over-long name gets a hash of the
    original, so two ids never share a file.
    """
    cleaned = _UNSAFE.sub("_", name).strip(". ") or "_"
    cleaned = cleaned.replace("..", "__")
    if cleaned.split(".")[0].upper() in _WINDOWS_RESERVED:
        cleaned = "_" + cleaned
    if cleaned != name or len(cleaned) > max_len:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        cleaned = f"{cleaned[: max_len - 11]}-{digest}"
    return cleaned


def golden_dir_for(module_path: Path, *, rootdir: Path, golden_root: Path | None) -> Path:
    """The directory holding one test module's goldens.

    Default: ``goldens/<module stem>/`` next to the module. With a golden root
    (``--golden-dir``), ``<root>/<module path relative to rootdir, without .py>/``.
    """
    module_path = Path(module_path)
    if golden_root is None:
        return module_path.parent / "goldens" / safe_name(module_path.stem)
    try:
        rel = module_path.with_suffix("").relative_to(rootdir)
    except ValueError:
        rel = Path(module_path.stem)
    return Path(golden_root).joinpath(*(safe_name(p) for p in rel.parts))


def sidecar_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{safe_name(name)}{SIDECAR_SUFFIX}"


def stem_of(sidecar: Path) -> str:
    return Path(sidecar).name[: -len(SIDECAR_SUFFIX)]


def obtained_path(sidecar: Path) -> Path:
    """Where a mismatching run leaves its outputs for review: ``<name>.obtained.npz``."""
    return Path(sidecar).with_name(stem_of(sidecar) + OBTAINED_SUFFIX)


def is_arrays_name(stem: str, name: str) -> bool:
    """Whether `name` is a content-addressed arrays file of the golden `stem`."""
    return name.startswith(stem) and bool(_CONTENT_HASH.fullmatch(name[len(stem):]))


def arrays_stem(name: str) -> str | None:
    """The golden stem of a content-addressed arrays file name, or None if it is not one."""
    m = re.fullmatch(r"(.+)\.[0-9a-f]{12}\.npz", name)
    return m.group(1) if m else None


def read_sidecar(path: Path) -> dict[str, Any]:
    """A sidecar's JSON document, read safely; GoldenError names the file and the cause.

    Only a regular file (after symlinks) of at most MAX_SIDECAR_BYTES is read, so a FIFO,
    /dev/zero or a huge file cannot hang or exhaust memory; any parse failure, including
    RecursionError on deep nesting and the int-digit limit, is this file's error.
    """
    path = Path(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise GoldenError(f"golden {path}: not a regular file")
        if st.st_size > MAX_SIDECAR_BYTES:
            raise GoldenError(f"golden {path}: the sidecar is {st.st_size} bytes, more than "
                              f"a golden sidecar can be ({MAX_SIDECAR_BYTES})")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SIDECAR_BYTES + 1)
    except GoldenError:
        raise
    except OSError as exc:
        raise GoldenError(f"golden {path}: cannot read the sidecar ({exc.strerror or exc})"
                          ) from None
    if len(raw) > MAX_SIDECAR_BYTES:
        raise GoldenError(f"golden {path}: the sidecar grew beyond {MAX_SIDECAR_BYTES} bytes")
    if raw.startswith(LFS_POINTER):
        raise GoldenError(f"golden {path}: is a Git LFS pointer, not the file: run "
                          "`git lfs pull`")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError, MemoryError) as exc:
        raise GoldenError(f"golden {path}: the sidecar is not a valid golden document "
                          f"({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(doc, dict):
        raise GoldenError(f"golden {path}: the sidecar is not a valid golden document "
                          f"(a JSON {type(doc).__name__}, not an object)")
    return doc


def delete_inside(directory: Path, path: Path) -> bool:
    """Delete `path` only if it is an entry directly inside `directory`; True if deleted.

    A symlink is removed as a link (its target is never touched); a directory is never removed.
    """
    try:
        real_dir = Path(directory).resolve(strict=True)
        if Path(path).parent.resolve(strict=True) != real_dir or Path(path).name in ("", ".",
                                                                                     ".."):
            return False
        target = real_dir / Path(path).name
        if stat.S_ISDIR(os.lstat(target).st_mode):
            return False
        target.unlink()
    except OSError:
        return False
    return True


# ---- locks --------------------------------------------------------------------------


def _lock_dir() -> Path:
    """This user's lock directory: ``<tmp>/pytest-modelpersist-locks-<uid>``, mode 0700.

    Created safely (not a symlink, owned by this user, private): a directory another user
    made, or a link planted in a shared /tmp, is refused rather than used.
    """
    getuid = getattr(os, "getuid", None)
    owner = str(getuid()) if getuid is not None else (os.environ.get("USERNAME") or "user")
    path = Path(tempfile.gettempdir()) / f"pytest-modelpersist-locks-{safe_name(owner)}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise GoldenError(f"lock directory {path} is not a directory (a symlink or a file): "
                          "refused; remove it")
    if getuid is not None:
        if st.st_uid != getuid():
            raise GoldenError(f"lock directory {path} belongs to uid {st.st_uid}, not to this "
                              f"user ({getuid()}): refused; remove it or set TMPDIR")
        if st.st_mode & 0o077:
            os.chmod(path, 0o700)
    return path


def run_marker(run_id: str, sidecar: Path) -> Path:
    """A file recording which item wrote `sidecar` in run `run_id` (shared by xdist workers)."""
    directory = _lock_dir() / f"run-{safe_name(run_id)}"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory / (_key(sidecar) + ".written")


def remove_run_markers(run_id: str) -> None:
    import shutil

    with contextlib.suppress(OSError, GoldenError):
        shutil.rmtree(_lock_dir() / f"run-{safe_name(run_id)}")


def _key(sidecar: Path) -> str:
    return hashlib.sha256(str(Path(sidecar).resolve()).encode()).hexdigest()[:32]


def golden_lock(sidecar: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock per golden across processes (xdist workers) of this user."""
    return file_lock(_lock_dir() / f"{_key(sidecar)}.lock")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on the file `path` (created 0600, never through a symlink) across
    processes of this machine; without fcntl (Windows) no lock, so writes must stay atomic."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        try:
            import fcntl
        except ImportError:  # Windows: no cross-process lock, writes stay atomic
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ---- what a golden directory holds ------------------------------------------------------------


def goldens_in(directory: Path) -> list[Path]:
    """The sidecars in a golden directory ([] if it is missing or unreadable)."""
    try:
        return sorted(Path(directory).glob(f"*{SIDECAR_SUFFIX}"))
    except OSError:
        return []


def stray_arrays(directory: Path) -> list[Path]:
    """Files a killed run left in a golden directory, safe to delete.

    Content-addressed arrays files (``<stem>.<12 hex>.npz``) that no sidecar refers to, unless
    their own sidecar is unreadable (they may still be its arrays), and the hidden temp files
    of an interrupted atomic write (``.<name>.<random>.tmp``). Nothing else.
    """
    referenced: set[str] = set()
    unreadable: set[str] = set()
    for sidecar in goldens_in(directory):
        try:
            arrays = read_sidecar(sidecar).get("arrays")
        except GoldenError:
            unreadable.add(stem_of(sidecar))
            continue
        if isinstance(arrays, str):
            referenced.add(arrays)
    try:
        npz = sorted(Path(directory).glob("*.npz"))
        temp = sorted(Path(directory).glob(".*.tmp"))
    except OSError:
        return []
    stray = [p for p in npz if p.name not in referenced
             and arrays_stem(p.name) not in (None, *unreadable)]
    return stray + temp
