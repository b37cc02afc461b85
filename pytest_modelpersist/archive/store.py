"""The archive's files: ``DIR/objects/<sha256>`` and ``DIR/<LABEL>/<test path>/<format>/``.

Each archived artifact is an entry, ``archive.json``: what recorded it (versions, model kind,
format), its files by content hash, its inputs and the original model's outputs (both stored
as objects too, or the inputs by checksum alone when they are large). Identical files across
labels are one object. ``DIR/<LABEL>/label.json`` says who recorded the label and whether it is
retired. Every file is written atomically (`_atomic.atomic_write`); objects are verified
against their hash when read, so an edited archive names the edited file.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .._atomic import atomic_write

ENTRY = "archive.json"
LABEL_FILE = "label.json"
OBJECTS = "objects"
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-\[\]=,+@]")


class ArchiveError(Exception):
    """A problem with the archive's files (tampered object, unreadable entry)."""


def label_problem(label: str) -> str | None:
    """Why `label` cannot name a label (None when it can)."""
    if not _LABEL.match(label) or label == OBJECTS:
        return (f"{label!r} is not a valid archive label: use letters, digits and . _ + - "
                f"(up to 64, not {OBJECTS!r}), e.g. v1.4 or tf2.15")
    return None


def test_path(owner: str) -> str:
    """The directory of a test under a label: its node id (without the persist parameter),
    ``::`` as ``/`` and characters a file system may refuse as ``_``."""
    parts = [_UNSAFE.sub("_", p) or "_" for p in re.split(r"::|/", owner)]
    return "/".join("_" if p in (".", "..") else p for p in parts)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_json(path: Path, what: str) -> dict[str, Any] | None:
    """The JSON object in `path`, None when the file does not exist; ArchiveError otherwise."""
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise ArchiveError(f"{path}: unreadable {what} ({exc})") from exc


def _dumps(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


class ArchiveStore:
    """The archive directory: objects, labels and their entries."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # ---- objects -------------------------------------------------------------------------

    def object_path(self, digest: str) -> Path:
        return self.root / OBJECTS / digest

    def put_bytes(self, data: bytes) -> str:
        """Store `data` once (content-addressed); returns its sha256."""
        digest = hashlib.sha256(data).hexdigest()
        if not self.object_path(digest).exists():
            atomic_write(self.object_path(digest), lambda fh: fh.write(data))
        return digest

    def put_file(self, path: Path) -> str:
        """Store the file at `path` once; returns its sha256."""
        digest = sha256_file(path)
        if not self.object_path(digest).exists():
            atomic_write(self.object_path(digest), lambda fh: fh.write(path.read_bytes()))
        return digest

    def get_bytes(self, digest: str, what: str) -> bytes:
        """The object `digest`; ArchiveError names `what` when it is missing or changed."""
        path = self.object_path(digest)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ArchiveError(f"archived file {what} ({path}) cannot be read: {exc}") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise ArchiveError(f"archived file {what} ({path}) was modified after recording: "
                               f"its sha256 is {actual[:16]}..., recorded {digest[:16]}...")
        return data

    def materialize(self, files: Mapping[str, str], directory: Path) -> None:
        """Write an entry's files (relative path -> sha256) under `directory`."""
        for rel, digest in sorted(files.items()):
            target = directory / rel
            if ".." in Path(rel).parts or Path(rel).is_absolute():
                raise ArchiveError(f"archived file name {rel!r} leaves its directory: refused")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.get_bytes(digest, rel))

    # ---- labels and entries ----------------------------------------------------------------

    def labels(self) -> list[str]:
        """Every label with a label.json, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob(f"*/{LABEL_FILE}"))

    def label_doc(self, label: str) -> dict[str, Any] | None:
        """The label's manifest (label.json), or None when the label does not exist."""
        return _read_json(self.root / label / LABEL_FILE, "label manifest")

    def write_label(self, label: str, doc: Mapping[str, Any]) -> None:
        atomic_write(self.root / label / LABEL_FILE, lambda fh: fh.write(_dumps(doc)))

    def entry_dir(self, label: str, owner: str, fmt: str, check: int = 1) -> Path:
        """Where check number `check` (1: the first persist.check of the item) is archived."""
        base = self.root / label / test_path(owner) / fmt
        return base if check == 1 else base / f"check-{check}"

    def read_entry(self, directory: Path) -> dict[str, Any] | None:
        """The entry archived in `directory`, or None when there is none."""
        return _read_json(directory / ENTRY, "archive entry")

    def write_entry(self, directory: Path, doc: Mapping[str, Any]) -> None:
        atomic_write(directory / ENTRY, lambda fh: fh.write(_dumps(doc)))

    def entries(self, label: str) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Every entry of `label` (directory, document); unreadable ones are skipped."""
        for path in sorted((self.root / label).rglob(ENTRY)):
            try:
                yield path.parent, dict(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue

    def formats_under(self, label: str, module_path: str, name: str) -> set[str]:
        """Formats archived in `label` for the test function `name` of `module_path`
        (any parametrization of it: ``name`` or ``name[...]``)."""
        base = self.root / label / test_path(module_path)
        found: set[str] = set()
        if not base.is_dir():
            return found
        for child in base.iterdir():
            if child.name == name or child.name.startswith(name + "["):
                found.update(p.parent.name for p in child.glob(f"*/{ENTRY}"))
        return found

    def referenced(self, label: str) -> dict[str, int]:
        """sha256 -> size of every object `label`'s entries use."""
        sizes: dict[str, int] = {}
        for _, doc in self.entries(label):
            for digest in entry_objects(doc):
                if digest not in sizes:
                    path = self.object_path(digest)
                    sizes[digest] = path.stat().st_size if path.exists() else 0
        return sizes


def entry_objects(doc: Mapping[str, Any]) -> list[str]:
    """Every object an entry refers to: its files, inputs and outputs."""
    found = list(doc.get("files", {}).values())
    for key in ("inputs", "outputs"):
        digest = (doc.get(key) or {}).get("object")
        if digest:
            found.append(digest)
    return found
