"""The format protocol, the artifact a save produces, and what a restore hands back."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..models import (
    KERAS,
    KINDS,
    Inputs,
    ModelInfo,
    RestoreReport,
    as_input_list,
    call_build,
    describe,
    perturb,
    run,
    unrestored,
    variables,
)

MANIFEST = "modelpersist.json"
KIND_LABELS = {"keras": "Keras", "tf.Module": "tf.Module", "tf1-graph": "TF1 graph"}


@dataclass
class Artifact:
    """What `persist.save` wrote: the format, the main path, every file and their bytes.

    `meta` holds what a loader needs besides the model files (input/output tensor names, the
    model kind); it is also written to ``modelpersist.json`` beside the files, and restores read
    it from there, so an artifact can be restored from its directory alone.
    """

    format: str
    path: Path
    directory: Path
    model_kind: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        """Every file of the artifact (the manifest included), sorted."""
        return sorted(p for p in self.directory.rglob("*") if p.is_file())

    @property
    def bytes(self) -> int:
        """Total size of the artifact's files."""
        return sum(p.stat().st_size for p in self.files)

    def write_manifest(self) -> None:
        doc = {
            "format": self.format,
            "path": self.path.relative_to(self.directory).as_posix(),
            "model_kind": self.model_kind,
            "meta": self.meta,
        }
        (self.directory / MANIFEST).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_directory(cls, directory: Path) -> Artifact:
        """Read an artifact back from its directory (its manifest)."""
        directory = Path(directory)
        manifest = directory / MANIFEST
        try:
            doc = json.loads(manifest.read_text())
            return cls(
                format=doc["format"],
                path=directory / doc["path"],
                directory=directory,
                model_kind=doc["model_kind"],
                meta=doc.get("meta", {}),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{manifest}: not a pytest-modelpersist artifact ({exc})") from exc

    def __str__(self) -> str:
        return f"{self.format} artifact {self.path} ({len(self.files)} files, {self.bytes} bytes)"


@dataclass
class Restored:
    """A model brought back from files: call it on inputs to get a list of numpy outputs."""

    artifact: Artifact
    model: Any
    runner: Callable[[list[np.ndarray]], list[np.ndarray]]
    report: RestoreReport | None = None
    how: str = ""

    def __call__(self, inputs: Inputs = None) -> list[np.ndarray]:
        return self.runner(as_input_list(inputs))


@runtime_checkable
class Format(Protocol):
    """A persistence format: how to save a model and how to bring it back."""

    @property
    def name(self) -> str:
        """The name used by --persist-formats, the marker and test ids."""

    @property
    def kinds(self) -> frozenset[str]:
        """Model kinds it can hold ("keras", "tf.Module", "tf1-graph", or "other")."""

    def unsupported(self, model: Any, info: ModelInfo) -> str | None:
        """Why this format cannot hold `model` (the test is skipped with it), or None."""

    def save(self, model: Any, directory: Path, *, inputs: Inputs) -> Artifact:
        """Write `model` under `directory` (an empty directory of its own)."""

    def restore(self, artifact: Artifact, *, build: Callable[[], Any] | None = None,
                **options: Any) -> Restored:
        """Bring `artifact` back from its files."""


class BaseFormat:
    """Shared defaults for the built-in formats."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]] = frozenset(KINDS)
    description: ClassVar[str] = ""
    #: True when the files hold only variables, so restore needs `build=`.
    needs_build: ClassVar[bool] = False
    #: True when TensorFlow's C API can load the files (frozen pb, SavedModel).
    c_api: ClassVar[bool] = False

    @property
    def loaders(self) -> tuple[str, ...]:
        """How this format's files can be brought back (see pytest_modelpersist.loaders).

        A weights-only format needs the model's code, so it restores in-process only.
        """
        found = ("inprocess",) if self.needs_build else ("inprocess", "subprocess")
        return found + (("capi",) if self.c_api else ())

    def unsupported(self, model: Any, info: ModelInfo) -> str | None:
        if info.kind not in self.kinds:
            holds = " and ".join(KIND_LABELS.get(k, k) for k in sorted(self.kinds))
            return f"{self.name} holds {holds} models only"
        return None

    def new_artifact(self, directory: Path, main: str, info: ModelInfo, **meta: Any) -> Artifact:
        return Artifact(self.name, directory / main, directory, info.kind, dict(meta))

    def __repr__(self) -> str:
        return f"<persist format {self.name}>"


def names_of(tensors: Sequence[Any]) -> list[str]:
    return [t if isinstance(t, str) else t.name for t in tensors]


def ensure_built(model: Any, artifact: Artifact) -> None:
    """Call an unbuilt Keras model once on zeros shaped like the saved inputs."""
    if describe(model).kind != KERAS or (getattr(model, "built", True) and model.variables):
        return
    zeros = [np.zeros([1 if d is None else d for d in s["shape"]], s["dtype"])
             for s in artifact.meta.get("input_specs", [])]
    if zeros:
        model(zeros if len(zeros) > 1 else zeros[0], training=False)


def restore_into_rebuilt(
    fmt: BaseFormat,
    artifact: Artifact,
    build: Callable[[], Any] | None,
    fill: Callable[[Any], RestoreReport],
    *,
    how: str,
    target: Any = None,
) -> Restored:
    """The shared weights-only restore: build a fresh model, perturb it, fill it, account.

    Perturbing first makes a restore that loads nothing visible: every float variable is moved
    inside TensorFlow and a few elements of each are sampled (models.perturb); any variable
    whose sampled elements all still hold their perturbed values afterwards is reported
    missing, whatever `fill` claimed. A restore that fills only unsampled elements of a
    variable escapes this check; the outputs comparison catches it.
    """
    if target is None:
        target = call_build(build, fmt.name, ModelInfo(artifact.model_kind, artifact.model_kind))
    ensure_built(target, artifact)
    named = variables(target)
    perturbed = perturb(target, named=named)
    report = fill(target)
    if report.complete:
        # What the loader claims to have filled but still holds its perturbed value.
        left = [n for n in unrestored(target, perturbed) if n not in report.skipped]
        if not report.restored:
            report.restored = [n for n in named if n not in report.skipped]
        report.restored = [n for n in report.restored if n not in left]
        report.missing.extend(f"{n} (value unchanged by the restore)" for n in left)
    return Restored(artifact, target, lambda args: run(target, args), report, how=how)


def spec_meta(inputs: Inputs) -> list[dict[str, Any]]:
    """Input specs as JSON: what a loader (or a rebuild of a subclassed model) needs."""
    from ..models import input_specs

    return [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype.name}
            for s in input_specs(inputs)]


def first_lines(exc: BaseException, n: int = 6) -> str:
    """The first non-empty lines of an exception message (cleaned), joined on one line."""
    from ..messages import clean_message

    lines = [ln.strip() for ln in clean_message(str(exc)).splitlines() if ln.strip()]
    return " / ".join(lines[:n]) if lines else type(exc).__name__
