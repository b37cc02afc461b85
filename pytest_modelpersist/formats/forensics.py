"""Looking at an artifact's files after a failed restore: what they are, at a glance.

Library messages mislead on such files ("File not found" for a .keras that is not a zip);
what the files are (empty, a Git LFS pointer, another format's bytes, a cut-short zip, a
checkpoint index without its data) names the real cause. `BaseFormat.diagnose` calls this.
"""

from __future__ import annotations

import glob
from pathlib import Path

#: The first line of a Git LFS pointer file.
LFS_POINTER = b"version https://git-lfs"

_MAGIC = {b"PK\x03\x04": "a zip archive (.keras)", b"\x89HDF\r\n\x1a\n": "an HDF5 file (.h5)"}
_SSTABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")  # TF checkpoint .index footer
_EXPECTED_BY_SUFFIX = {".keras": "a zip archive (.keras)", ".h5": "an HDF5 file (.h5)",
                       ".hdf5": "an HDF5 file (.h5)"}


def file_notes(path: Path | None, exc: BaseException | None = None) -> list[str]:
    """Short facts about an artifact's files that explain a failed restore, or [].

    Empty files, Git LFS pointers checked in instead of the file, a file whose first bytes are
    another format than its suffix promises (an HDF5 file named .keras), a zip cut short, a
    missing file, and bytes that are not text where text was expected.
    """
    if path is None:
        return []
    path = Path(path)
    notes = []
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    elif path.is_file():
        files = [path]
    else:  # a checkpoint prefix: model.index, model.data-* and `checkpoint` beside it
        if path.parent.is_dir() and not any(path.parent.glob(glob.escape(path.name) + ".*")):
            notes.append(f"{path.name} does not exist")
        files = sorted(p for p in path.parent.glob("*") if p.is_file()) if (
            path.parent.is_dir()) else []
    for f in files[:100]:
        try:
            size = f.stat().st_size
            with f.open("rb") as fh:
                head = fh.read(len(LFS_POINTER))
                fh.seek(max(size - 8, 0))
                tail = fh.read(8)
        except OSError:
            continue
        name = f.relative_to(path).as_posix() if f != path and path.is_dir() else f.name
        want = _EXPECTED_BY_SUFFIX.get(f.suffix)
        got = next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)
        if size == 0:
            notes.append(f"{name} is empty")
        elif head.startswith(LFS_POINTER):
            notes.append(f"{name} is a Git LFS pointer, not the file: run `git lfs pull`")
        elif want is not None and got is not None and got != want:
            notes.append(f"{name} is {got}, not {want}: a file of another format")
        elif want is not None and got is None:
            notes.append(f"{name} is not {want} (unrecognized bytes: corrupt, or another format)")
        elif f.suffix == ".index" and tail != _SSTABLE_MAGIC:
            notes.append(f"{name} is not a checkpoint index (an SSTable): truncated, corrupt, "
                         "or a file of another format")
        elif got == _MAGIC[b"PK\x03\x04"] and not _is_zipfile(f):
            notes.append(f"{name} starts like a zip archive but is not a complete one: "
                         "truncated or corrupt")
        if f.suffix == ".index" and not any(f.parent.glob(glob.escape(f.stem) + ".data-*")):
            notes.append(f"{name} has no data file ({f.stem}.data-*-of-*) beside it")
    if isinstance(exc, UnicodeDecodeError):
        notes.append("a file held bytes that are not text where text or a protobuf was "
                     "expected: corrupt, truncated, or a file of another format")
    return notes


def _is_zipfile(path: Path) -> bool:
    import zipfile

    return zipfile.is_zipfile(path)
