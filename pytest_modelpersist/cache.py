"""Session artifact cache: a model saved in a format once, reused by every test that checks it.

The key is the format, the model's architecture and weights (a fingerprint, not object
identity: a rebuilt model with the same weights hits too) and the input signature. A hit is
served only if every file is as it was written (size and mtime), so a test that edits an
artifact's files cannot poison another test's restore.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .formats.base import Artifact
from .models import KERAS_KINDS, GraphModel, as_input_list, describe, read_values
from .nest import structure_of
from .tables import fingerprints as table_fingerprints

IDENTITY = "object:"  # an architecture known only by the object's identity: one process only


def _architecture(model: Any) -> str:
    """A description of the computation, or the object's identity when none is available."""
    if isinstance(model, GraphModel):
        graph_def = model.graph.as_graph_def().SerializeToString(deterministic=True)
        return "graph:" + hashlib.sha256(graph_def).hexdigest() + ":" + ",".join(
            model.input_names + model.output_names)
    info = describe(model)
    if info.kind in KERAS_KINDS:
        try:
            return f"{info.kind}:" + model.to_json() + _compile_config(model)
        except Exception:  # a subclassed model without get_config: identity only
            pass
    return f"{IDENTITY}{type(model).__module__}.{type(model).__qualname__}:{id(model)}"


def _compile_config(model: Any) -> str:
    """How the model was compiled (a .keras or .h5 file keeps it), or "" when it cannot say."""
    get = getattr(model, "get_compile_config", None)
    try:
        return ":compiled:" + json.dumps(get(), sort_keys=True, default=repr) if get else ""
    except Exception:  # Keras versions differ in what an uncompiled model answers
        return ""


def fingerprint(model: Any, inputs: Any, *, strong: bool = False) -> str | None:
    """Architecture + weights + input signature, hashed: CRC-32 over the weight bytes within
    one process; SHA-256 with `strong` (another process will trust the artifact without seeing
    the model). With `strong`, None when the model is known only by its identity (a subclassed
    model without a config, a tf.Module): such a key cannot mean the same model elsewhere."""
    architecture = _architecture(model)
    if strong and architecture.startswith(IDENTITY):
        return None
    h = hashlib.sha256(architecture.encode())
    for name, value in sorted(read_values(model).items()):
        value = np.ascontiguousarray(value)
        h.update(f"{name}:{value.dtype.str}:{value.shape}".encode())
        data = value.tobytes() if value.size else b""
        h.update(hashlib.sha256(data).digest() if strong
                 else zlib.crc32(data).to_bytes(4, "little"))
    for x in as_input_list(inputs):
        h.update(f"in:{x.dtype.str}:{x.shape[1:]}".encode())
    if strong:  # lookup tables are state the weights do not show
        held = [(t["entries"], t["crc32"]) for t in table_fingerprints(model)]
        h.update(repr(held).encode())
    return h.hexdigest()


def cache_key(model: Any, inputs: Any, options: dict[str, Any], *,
              strong: bool = False) -> str | None:
    """The cache key of saving `model` with `options` for `inputs` (see fingerprint); the
    input structure is part of it (dict vs list inputs: another input map)."""
    found = fingerprint(model, inputs, strong=strong)
    if found is None:
        return None
    return found + repr(sorted(options.items())) + repr(structure_of(inputs))


def _stat(artifact: Artifact) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in artifact.files}


@dataclass
class ArtifactCache:
    """Artifacts saved in this session (one process), by format and model fingerprint; with
    `shared` (an xdist run, shared_cache.py), also the artifacts the other workers saved."""

    root: Path
    enabled: bool = True
    saves: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    _entries: dict[tuple[str, str], tuple[Artifact, dict[str, tuple[int, int]]]] = field(
        default_factory=dict)
    #: Saves that failed: the other items of the same model and format (other loaders, other
    #: tests) report the same failure instead of redoing the save.
    failed: dict[tuple[str, str], str] = field(default_factory=dict)
    #: The cache the xdist workers share (shared_cache.SharedStore), or None.
    shared: Any = None
    #: What the summary should say about this cache (why it is not shared, entries replaced).
    notes: list[str] = field(default_factory=list)

    def lookup(self, fmt: str, key: str) -> Artifact | None:
        entry = self._entries.get((fmt, key))
        if entry is None:
            return None
        artifact, stat = entry
        try:
            unchanged = _stat(artifact) == stat
        except OSError:
            unchanged = False
        if not unchanged:  # someone edited the files: save again
            del self._entries[(fmt, key)]
            return None
        self.hits[fmt] += 1
        return artifact

    def directory(self, fmt: str, key: str) -> Path:
        path = self.root / fmt / key[:16]
        n = 0
        while path.exists():
            n += 1
            path = self.root / fmt / f"{key[:16]}-{n}"
        path.mkdir(parents=True)
        return path

    def store(self, fmt: str, key: str, artifact: Artifact) -> None:
        self.saves[fmt] += 1
        self._entries[(fmt, key)] = (artifact, _stat(artifact))

    @contextlib.contextmanager
    def claim(self, fmt: str, key: str, *, shared_key: str | None = None) -> Iterator[Claim]:
        """The key's artifact, or its failure, or the right to save it (see Claim).

        With a shared store and a `shared_key` (the strong fingerprint), the key is locked
        across workers for the block: another worker waiting for it gets this one's result.
        """
        hit = self.lookup(fmt, key)
        if hit is not None or (fmt, key) in self.failed or self.shared is None or (
                shared_key is None):
            yield Claim(self, fmt, key, artifact=hit, failure=self.failed.get((fmt, key)))
            return
        with self.shared.locked(fmt, shared_key) as entry:
            found = entry.read()
            if isinstance(found, str):  # another worker's save failed
                self.failed[fmt, key] = found
                yield Claim(self, fmt, key, failure=found)
            elif found is not None:  # another worker's artifact, verified
                self._entries[(fmt, key)] = (found, _stat(found))
                self.hits[fmt] += 1
                yield Claim(self, fmt, key, artifact=found)
            else:
                yield Claim(self, fmt, key, entry=entry)
            self.notes.extend(entry.notes)

    def summary(self) -> dict[str, Any]:
        return {"saves": dict(self.saves), "hits": dict(self.hits)}


@dataclass
class Claim:
    """One item's turn at a cache key: the `artifact` to reuse, the `failure` (message) of the
    earlier save to report, or neither: then save into `directory()` and `publish` the artifact,
    or `fail` with the message."""

    cache: ArtifactCache
    fmt: str
    key: str
    artifact: Artifact | None = None
    failure: str | None = None
    entry: Any = None  # shared_cache.SharedEntry, locked, when the workers share the cache

    def directory(self) -> Path:
        """A new empty directory to save into."""
        if self.entry is not None:
            return self.entry.new_directory()
        return self.cache.directory(self.fmt, self.key)

    def publish(self, artifact: Artifact) -> None:
        self.cache.store(self.fmt, self.key, artifact)
        if self.entry is not None:
            self.entry.publish(artifact)

    def fail(self, message: str) -> None:
        self.cache.failed[self.fmt, self.key] = message
        if self.entry is not None:
            self.entry.fail(message)
