"""The format contract: the `Format` protocol, its defaults, the artifact and the restored model.

`Format` lists every member the plugin uses; the registry checks a format against it once, at
registration (:func:`check_format`), and from then on the plugin trusts it: nothing outside
`formats/` looks a member up by name. Subclass :class:`BaseFormat` to get the defaults and write
`name`, `save` and `restore`; a class of your own must declare every member.

This module imports neither numpy nor TensorFlow: the registry and the lazy built-in stand-ins
use it while pytest starts.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from ..errors import FormatContractError
from ..restore.options import RestoreOptions

if TYPE_CHECKING:
    import numpy as np

    from ..models import Inputs, ModelInfo, RestoreReport
    from ..restore.saved import SavedVariables

MANIFEST = "modelpersist.json"
#: The model kinds (models.KINDS) and OTHER, spelled here so this module stays light.
KINDS = frozenset({"keras", "keras2", "tf.Module", "tf1-graph"})
KIND_LABELS = {"keras": "Keras", "keras2": "Keras 2", "tf.Module": "tf.Module",
               "tf1-graph": "TF1 graph"}
#: How TensorFlow's C API reads a format's files (`Format.capi`): a frozen GraphDef fed and
#: fetched by the tensor names in the artifact's meta, or a SavedModel directory run through
#: its `serving_default` signature.
CAPI_GRAPH_DEF, CAPI_SAVED_MODEL = "graph_def", "saved_model"


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
        """Write ``modelpersist.json``: what `from_directory` reads back."""
        doc = {
            "format": self.format,
            "path": self.path.relative_to(self.directory).as_posix(),
            "model_kind": self.model_kind,
            "meta": self.meta,
        }
        (self.directory / MANIFEST).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_directory(cls, directory: Path | str) -> Artifact:
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
    """A model brought back from files: call it on inputs to get its numpy outputs.

    `runner` takes a list of the input arrays (the leaves of the input nest, in flatten order)
    and returns the outputs, a list of arrays or any nest of them; with ``takes_nest=True`` it
    takes the input nest itself, as the original model did (an array, a list, a dict ...).
    Called, a Restored returns the outputs' nest, except that a lone array or a flat list of
    arrays comes back as a list (``(probs,) = restored(x)``).
    """

    artifact: Artifact
    model: Any
    runner: Callable[[Any], Any]
    report: RestoreReport | None = None
    how: str = ""
    #: For converted models: runs them on inputs and returns every intermediate tensor by
    #: name (what divergence.explain_tflite matches to Keras layers), or None.
    intermediates: Callable[[list[np.ndarray]], dict[str, np.ndarray]] | None = None
    takes_nest: bool = False

    def outputs(self, inputs: Inputs = None) -> Any:
        """The outputs in the model's own structure (a lone array stays an array)."""
        from ..models import as_input_list

        return self.runner(inputs if self.takes_nest else as_input_list(inputs))

    def __call__(self, inputs: Inputs = None) -> Any:
        from ..nest import present

        return present(self.outputs(inputs))


def pack_outputs(artifact: Artifact, flat: Sequence[Any]) -> Any:
    """Flat outputs (a graph's fetches, in path order) in the structure the manifest records."""
    from ..nest import as_array, pack
    from ..nest_tf import IOMap

    io = IOMap.from_meta(artifact.meta)
    if io is None:  # an artifact of an older version: a flat list
        return [as_array(v) for v in flat]
    return pack(io.outputs.structure, [as_array(v, p) for v, p in zip(flat, io.outputs.paths,
                                                                        strict=True)])


@runtime_checkable
class Format(Protocol):
    """A persistence format: every member the plugin reads or calls (see BaseFormat's defaults).

    The properties may be plain class attributes. They are read at collection time (`name`,
    `kinds`, `loaders`) or before a restore; the methods run inside a test.
    """

    @property
    def name(self) -> str:
        """The name used by --persist-formats, the marker and test ids (letters, digits, '_')."""

    @property
    def description(self) -> str:
        """One line for people: what files it writes and how it loads them."""

    @property
    def kinds(self) -> frozenset[str]:
        """Model kinds it can hold: "keras", "tf.Module", "tf1-graph", or "other"."""

    @property
    def needs_build(self) -> bool:
        """True when the files hold only variables: a restore needs `build=` (or `into=`)."""

    @property
    def rebuild_optional(self) -> bool:
        """True when the files restore alone *and* into a rebuilt model; `persist.check` then
        tries both when the test gives `build=` (ckpt: import_meta_graph and by name)."""

    @property
    def loaders(self) -> tuple[str, ...]:
        """Which loaders bring the files back: "inprocess", "subprocess", "capi"."""

    @property
    def capi(self) -> str | None:
        """How TensorFlow's C API reads the files (CAPI_GRAPH_DEF, CAPI_SAVED_MODEL), or None.
        The `capi` loader reads this, never the format's name."""

    @property
    def restore_options(self) -> frozenset[str]:
        """The restore options it takes besides `build` and `safe_mode` (taken by all):
        options.INTO_MODEL for a by-name restore into a model, its own ("checkpoint")."""

    @property
    def save_options(self) -> Mapping[str, type]:
        """The keywords its `save` takes besides `inputs` (converter options: onnx's
        ``opset``), each with its type (bool, int, float or str). The `persist` marker's and
        ini's ``convert`` options reach the formats that declare them; an option no format
        declares is an error listing these."""

    def unsupported(self, model: Any, info: ModelInfo) -> str | None:
        """Why this format cannot hold `model` (the test is skipped with it), or None."""

    def save(self, model: Any, directory: Path, *, inputs: Inputs) -> Artifact:
        """Write `model` under `directory` (an empty directory of its own)."""

    def restore(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        """Bring `artifact` back from its files, with options the plugin parsed and checked."""

    def saved_names(self, artifact: Artifact, options: RestoreOptions) -> SavedVariables | None:
        """The variables the files hold, by the names `var_map`/`only` use (None: none)."""

    def diagnose(self, artifact: Artifact, exc: BaseException) -> list[str]:
        """Facts about the files that explain a failed restore ("looking at the files: ...")."""

    def safe_mode_scope(self, on: bool) -> AbstractContextManager[None]:
        """A context in which loading refuses to run code from the files when `on`."""


#: Every member of `Format`, in declaration order: what `check_format` requires.
MEMBERS: tuple[str, ...] = tuple(
    name for name, value in vars(Format).items()
    if not name.startswith("_") and (isinstance(value, property) or inspect.isfunction(value)))
_METHODS = frozenset(name for name in MEMBERS if inspect.isfunction(vars(Format)[name]))


def check_format(fmt: object) -> None:
    """Raise FormatContractError naming every member of `Format` that `fmt` lacks.

    Presence is looked up statically (a property is not evaluated), so a lazy built-in is not
    imported by the check.
    """
    sentinel = object()
    found = {m: inspect.getattr_static(fmt, m, sentinel) for m in MEMBERS}
    label = f"persist format {type(fmt).__module__}.{type(fmt).__qualname__}"
    missing = [m for m, v in found.items() if v is sentinel]
    not_callable = [m for m in _METHODS if m not in missing and not callable(getattr(fmt, m))]
    if missing or not_callable:
        parts = []
        if missing:
            parts.append(f"is missing {', '.join(missing)}")
        if not_callable:
            parts.append(f"has {', '.join(not_callable)} that cannot be called")
        raise FormatContractError(
            f"{label} {' and '.join(parts)}: a format declares every member of "
            "pytest_modelpersist.Format (subclass pytest_modelpersist.BaseFormat for defaults)")
    name = fmt.name  # type: ignore[attr-defined]
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
        raise FormatContractError(f"{label}: a format's name is letters, digits and '_', "
                                  f"not {name!r}")


class BaseFormat:
    """Defaults for every member of `Format` but `name`, `save` and `restore`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    kinds: ClassVar[frozenset[str]] = KINDS
    needs_build: ClassVar[bool] = False
    rebuild_optional: ClassVar[bool] = False
    capi: ClassVar[str | None] = None
    restore_options: ClassVar[frozenset[str]] = frozenset()
    save_options: ClassVar[Mapping[str, type]] = {}

    @property
    def loaders(self) -> tuple[str, ...]:
        """In-process always; a fresh interpreter unless the model's code is needed
        (`needs_build`); the C API when `capi` says how it reads the files."""
        found = ("inprocess",) if self.needs_build else ("inprocess", "subprocess")
        return found + (("capi",) if self.capi else ())

    def unsupported(self, model: Any, info: ModelInfo) -> str | None:
        """A reason when the model's kind is not in `kinds`."""
        if info.kind not in self.kinds:
            # dict.fromkeys: Keras 2 and 3 read as one "Keras" where a format holds both
            labels = dict.fromkeys(KIND_LABELS.get(k, k) for k in sorted(self.kinds)
                                   if not (k == "keras2" and "keras" in self.kinds))
            holds = " and ".join(labels)
            return f"{self.name} holds {holds} models only"
        return None

    def save(self, model: Any, directory: Path, *, inputs: Inputs) -> Artifact:
        raise NotImplementedError(f"{type(self).__name__}.save")

    def restore(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        raise NotImplementedError(f"{type(self).__name__}.restore")

    def saved_names(self, artifact: Artifact, options: RestoreOptions) -> SavedVariables | None:
        """None: the files hold no variables to restore by name."""
        return None

    def diagnose(self, artifact: Artifact, exc: BaseException) -> list[str]:
        """What the files are, at a glance: empty, LFS pointers, another format's bytes..."""
        from .forensics import file_notes

        return file_notes(artifact.path, exc)

    def safe_mode_scope(self, on: bool) -> AbstractContextManager[None]:
        """No code runs from these files: nothing to guard."""
        return contextlib.nullcontext()

    def new_artifact(self, directory: Path, main: str, info: ModelInfo, example: Inputs,
                     /, **meta: Any) -> Artifact:
        """The artifact of a save: `main` under `directory`, with meta and the input specs of
        the `example` inputs (what a loader, or a rebuild of a subclassed model, needs)."""
        from ..models import input_specs

        # Shapes as plain ints or None: under `disable_v2_tensorshape` a shape holds Dimension
        # objects, which JSON cannot hold.
        specs = [{"name": s.name, "shape": [None if d is None else int(d)
                                            for d in s.shape.as_list()],
                  "dtype": "string" if s.dtype.name == "string" else s.dtype.name}
                 for s in input_specs(example)]
        return Artifact(self.name, directory / main, directory, info.kind,
                        {**meta, "input_specs": specs})

    def __repr__(self) -> str:
        return f"<persist format {self.name}>"


class WrappedFormat:
    """A format that hands every member to `inner`: subclass it and override what changes
    (a test's format that damages the files after `inner` wrote them, say)."""

    name: str

    def __init__(self, inner: Format) -> None:
        self._inner = inner
        self.name = inner.name

    @property
    def inner(self) -> Format:
        """The wrapped format."""
        return self._inner

    @property
    def description(self) -> str:
        return self.inner.description

    @property
    def kinds(self) -> frozenset[str]:
        return self.inner.kinds

    @property
    def needs_build(self) -> bool:
        return self.inner.needs_build

    @property
    def rebuild_optional(self) -> bool:
        return self.inner.rebuild_optional

    @property
    def loaders(self) -> tuple[str, ...]:
        return self.inner.loaders

    @property
    def capi(self) -> str | None:
        return self.inner.capi

    @property
    def restore_options(self) -> frozenset[str]:
        return self.inner.restore_options

    @property
    def save_options(self) -> Mapping[str, type]:
        return self.inner.save_options

    def unsupported(self, model: Any, info: ModelInfo) -> str | None:
        return self.inner.unsupported(model, info)

    def save(self, model: Any, directory: Path, *, inputs: Inputs, **options: Any) -> Artifact:
        return self.inner.save(model, directory, inputs=inputs, **options)

    def restore(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        return self.inner.restore(artifact, options)

    def saved_names(self, artifact: Artifact, options: RestoreOptions) -> SavedVariables | None:
        return self.inner.saved_names(artifact, options)

    def diagnose(self, artifact: Artifact, exc: BaseException) -> list[str]:
        return self.inner.diagnose(artifact, exc)

    def safe_mode_scope(self, on: bool) -> AbstractContextManager[None]:
        return self.inner.safe_mode_scope(on)

    def __repr__(self) -> str:
        return f"<persist format {self.name} wrapping {self.inner!r}>"
