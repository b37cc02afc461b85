"""One way to write a file so that readers see the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "umask"]


def umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    # Elsewhere the only way to read it is to set it; set it straight back.
    current = os.umask(0o022)
    os.umask(current)
    return current


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object], *,
                 rename_to: Callable[[Path], Path] | None = None) -> Path:
    """Create ``path`` with ``write(file)``: temporary file in the same directory, fsync, rename.

    The final file gets the mode a plain ``open(path, "w")`` would give (0o666 minus the
    umask), not mkstemp's 0600, so another user of a shared checkout or CI cache can read it.
    ``rename_to(tmp)``, when given, picks the final path after the bytes are written (a
    content-addressed name); it must be in the same directory. Parent directories are created.
    On any error the temporary file is removed and the old file, if any, is left as it was.
    Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
            if hasattr(os, "fchmod"):  # not on Windows, where mkstemp's mode is not 0600 anyway
                os.fchmod(fh.fileno(), 0o666 & ~umask())
        final = path if rename_to is None else rename_to(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(final.parent)
    return final


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
