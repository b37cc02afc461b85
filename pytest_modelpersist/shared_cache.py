"""The artifact cache the pytest-xdist workers of one run share: one save per key across workers.

The controller makes a private directory (mode 0700, under its basetemp, as xdist does for the
workers' own basetemps) and hands its path, its host name and a token to every worker through
``workerinput`` (like the run id, ownership.py). A worker uses it only if it runs on the same
host and the directory is there, not a symlink, owned by this user, private and holds the
token; otherwise (workers on other machines, sharing nothing) each worker keeps its own cache
and the summary says why.

A key is the format and the model's strong fingerprint (cache.cache_key: SHA-256 over the
architecture, the weights, the input signature and the save options; a model known only by its
identity is never shared). Under the key's file lock (golden_paths.file_lock), the first worker
saves into a new directory and publishes a record, written atomically (temp file, fsync,
rename): the commit point, naming the directory and each file's size and SHA-256 (the files
are saved in place, not in a temp directory renamed after: a TF1 Saver's ``checkpoint`` file
names its files by absolute path). A worker that
waited for the lock, or comes later, verifies the files against the record before it restores
anything from them (once; its own cache then watches sizes and mtimes as for its own saves). A
save that failed is published as the failure, which the other workers' items report instead of
saving again. An entry whose files changed after publishing is saved again, republished, and
named in the summary. Restores of a shared artifact go through the same op screening
(formats/containment.py) as any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ._atomic import atomic_write
from .archive.store import sha256_file
from .formats.base import Artifact
from .golden_paths import file_lock, safe_name

#: The workerinput entry: {"dir": path, "host": controller's host name, "token": ...}.
WORKERINPUT = "modelpersist_cache"
TOKEN = "token"


class SharedCacheController:
    """The controller's side: makes the directory once and hands it to each xdist worker."""

    def __init__(self, config: pytest.Config, *, enabled: bool) -> None:
        self.config = config
        self.enabled = enabled
        self._given: dict[str, str] | None = None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if not self.enabled:
            return
        if self._given is None:
            self._given = self._make()
        if self._given:
            node.workerinput[WORKERINPUT] = dict(self._given)

    def _make(self) -> dict[str, str]:
        """The directory's description for the workers, or {} when it cannot be made."""
        factory = getattr(self.config, "_tmp_path_factory", None)  # what xdist itself uses
        if factory is None:
            return {}
        try:
            root = factory.getbasetemp() / "persist-shared-cache"
            with contextlib.suppress(FileExistsError):
                os.mkdir(root, 0o700)
            if private_dir_problem(root):
                return {}
            token = uuid.uuid4().hex
            atomic_write(root / TOKEN, lambda fh: fh.write(token.encode()))
        except OSError:
            return {}
        return {"dir": str(root), "host": socket.gethostname(), "token": token}


def private_dir_problem(path: Path) -> str | None:
    """Why `path` is not a directory private to this user (None when it is)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"{path} is not visible here ({exc.strerror})"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory (a symlink or a file)"
    getuid = getattr(os, "getuid", None)
    if getuid is not None and st.st_uid != getuid():
        return f"{path} belongs to uid {st.st_uid}, not to this user"
    if getuid is not None and st.st_mode & 0o077:
        return f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def open_shared(config: pytest.Config) -> tuple[SharedStore | None, str | None]:
    """This worker's view of the shared cache: (the store, None), or (None, why each worker
    keeps its own cache instead), or (None, None) outside an xdist worker."""
    given = getattr(config, "workerinput", {}).get(WORKERINPUT)
    if not given:
        return None, None
    worker = str(config.workerinput.get("workerid", "worker"))  # type: ignore[attr-defined]
    why = f"artifacts are saved per worker ({worker}): "
    host = socket.gethostname()
    if given.get("host") != host:
        return None, why + f"it runs on {host}, the controller on {given.get('host')}"
    root = Path(given["dir"])
    problem = private_dir_problem(root)
    if problem is None:
        try:
            token = (root / TOKEN).read_text()
        except OSError as exc:
            token = f"unreadable: {exc}"
        if token != given.get("token"):
            problem = f"{root} is not the controller's cache directory (another machine's?)"
    if problem is not None:
        return None, why + problem
    return SharedStore(root, worker), None


@dataclass
class SharedStore:
    """The shared directory, seen from one worker."""

    root: Path
    worker: str

    @contextlib.contextmanager
    def locked(self, fmt: str, key: str) -> Iterator[SharedEntry]:
        """The key's entry, locked against the other workers for the block."""
        directory = self.root / safe_name(fmt)
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        with file_lock(directory / f"{name}.lock"):
            yield SharedEntry(directory, name, key, self.worker)


@dataclass
class SharedEntry:
    """One key's record and directories: read it, or save and publish (under the lock)."""

    parent: Path
    name: str
    key: str
    worker: str
    notes: list[str] = field(default_factory=list)

    @property
    def record(self) -> Path:
        return self.parent / f"{self.name}.json"

    def read(self) -> Artifact | str | None:
        """The published artifact (its files verified), the failure message of a save that
        failed, or None: nothing published, or the files changed since (noted)."""
        try:
            doc = json.loads(self.record.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self.notes.append(f"shared cache record {self.record} unreadable ({exc}): saved again")
            return None
        if not isinstance(doc, dict) or doc.get("key") != self.key:
            return None
        if isinstance(doc.get("failed"), str):
            return str(doc["failed"])
        directory = self.parent / str(doc.get("directory"))
        if directory.parent != self.parent or not directory.name.startswith(self.name):
            return None
        problem = _changed(directory, doc.get("files"))
        if problem is not None:
            self.notes.append(f"shared artifact {directory} (saved by {doc.get('worker')}) "
                              f"changed after it was published ({problem}): saved again")
            return None
        return Artifact.from_directory(directory)

    def new_directory(self) -> Path:
        n = 0
        while True:
            path = self.parent / f"{self.name}-{n}"
            try:
                os.mkdir(path, 0o700)
                return path
            except FileExistsError:
                n += 1

    def publish(self, artifact: Artifact) -> None:
        """Commit `artifact` (saved in new_directory()) for the other workers."""
        files = {p.relative_to(artifact.directory).as_posix(): [p.stat().st_size, sha256_file(p)]
                 for p in artifact.files}
        self._write({"key": self.key, "worker": self.worker,
                     "directory": artifact.directory.name, "files": files})

    def fail(self, message: str) -> None:
        self._write({"key": self.key, "worker": self.worker, "failed": message})

    def _write(self, doc: dict[str, Any]) -> None:
        data = json.dumps(doc, sort_keys=True).encode()
        atomic_write(self.record, lambda fh: fh.write(data))


def _changed(directory: Path, files: Any) -> str | None:
    """How `directory`'s files differ from the record's `files` (None when they do not)."""
    if not isinstance(files, dict):
        return "the record lists no files"
    try:
        now = {p.relative_to(directory).as_posix(): p for p in directory.rglob("*")
               if p.is_file()}
        if set(now) != set(files):
            return f"files added or removed: {sorted(set(now) ^ set(files))[:5]}"
        for rel, (size, digest) in sorted(files.items()):
            if now[rel].stat().st_size != size or sha256_file(now[rel]) != digest:
                return f"{rel} has other bytes"
    except (OSError, ValueError, TypeError) as exc:
        return f"unreadable: {exc}"
    return None
