"""Session artifact cache: a model saved in a format once, reused by every test that checks it.

The key is the format, the model's architecture and weights (a fingerprint, not object
identity: a rebuilt model with the same weights hits too) and the input signature. A hit is
served only if every file is as it was written (size and mtime), so a test that edits an
artifact's files cannot poison another test's restore.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .formats.base import Artifact
from .models import KERAS_KINDS, GraphModel, as_input_list, describe, read_values


def _architecture(model: Any) -> str:
    """A description of the computation, or the object's identity when none is available."""
    if isinstance(model, GraphModel):
        graph_def = model.graph.as_graph_def().SerializeToString(deterministic=True)
        return "graph:" + hashlib.sha256(graph_def).hexdigest() + ":" + ",".join(
            model.input_names + model.output_names)
    info = describe(model)
    if info.kind in KERAS_KINDS:
        try:
            return f"{info.kind}:" + model.to_json()
        except Exception:  # a subclassed model without get_config: identity only
            pass
    return f"object:{type(model).__module__}.{type(model).__qualname__}:{id(model)}"


def fingerprint(model: Any, inputs: Any) -> str:
    """Architecture + weights + input signature, hashed (CRC-32 over the weight bytes)."""
    h = hashlib.sha256(_architecture(model).encode())
    for name, value in sorted(read_values(model).items()):
        value = np.ascontiguousarray(value)
        h.update(f"{name}:{value.dtype.str}:{value.shape}".encode())
        h.update(zlib.crc32(value.tobytes() if value.size else b"").to_bytes(4, "little"))
    for x in as_input_list(inputs):
        h.update(f"in:{x.dtype.str}:{x.shape[1:]}".encode())
    return h.hexdigest()


def _stat(artifact: Artifact) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in artifact.files}


@dataclass
class ArtifactCache:
    """Artifacts saved in this session (one process), by format and model fingerprint."""

    root: Path
    enabled: bool = True
    saves: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    _entries: dict[tuple[str, str], tuple[Artifact, dict[str, tuple[int, int]]]] = field(
        default_factory=dict)
    #: Saves that failed: the other items of the same model and format (other loaders, other
    #: tests) report the same failure instead of redoing the save.
    failed: dict[tuple[str, str], str] = field(default_factory=dict)

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

    def summary(self) -> dict[str, Any]:
        return {"saves": dict(self.saves), "hits": dict(self.hits)}
