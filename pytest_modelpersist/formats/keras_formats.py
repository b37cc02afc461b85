"""Keras formats: full-model HDF5 `h5`, weights-only `weights_h5`, and the `.keras` archive."""

from __future__ import annotations

import contextlib
import re
import sys
import traceback
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from .. import compat
from .._tf import import_keras
from ..models import KERAS, KERAS2, KERAS_KINDS, Inputs, ModelInfo, RestoreReport, describe, run
from ..restore.engine import restore_with
from ..restore.options import INTO_MODEL, RestoreOptions, needs_target
from ..restore.readers import ByName
from ..restore.saved import SavedVariables, h5_layer_weight_names
from . import shards
from .base import Artifact, BaseFormat, Restored
from .containment import check_h5, check_keras_file, spill_member

#: `Artifact.meta` key: ``"keras"`` when today's Keras 3 reads a Keras 2 artifact (an archive
#: replayed into today's Keras 3 model) instead of the Keras 2 package it was saved with.
READ_WITH = "read_with"


def read_by_keras2(artifact: Artifact) -> bool:
    """True when the Keras 2 package the artifact was saved with reads it (see READ_WITH)."""
    return artifact.model_kind == KERAS2 and artifact.meta.get(READ_WITH) != KERAS


def keras_of(artifact: Artifact) -> Any:
    """The Keras package that reads `artifact`: Keras 3, or the Keras 2 package it was saved
    with (``tf_keras``, or ``keras`` 2.x on TF <= 2.15)."""
    if read_by_keras2(artifact):
        # Not recorded (saved through the format, not `persist`): `tf.keras`'s Keras 2, which
        # is `keras` on TF <= 2.15 and `tf_keras` after (import_keras2 falls back to it).
        return compat.import_keras2(artifact.meta.get("keras_package", "keras"))
    return import_keras()


def load_keras_model(artifact: Artifact, *, safe_mode: bool = True) -> Any:
    """`load_model` without compiling; Lambda code runs only if safe_mode=False."""
    keras = keras_of(artifact)
    path = Path(artifact.path)
    if path.is_file():  # a Keras 2 SavedModel directory has its own screen
        check_keras_file(path, fmt=artifact.format, allow=not safe_mode)
    if (read_by_keras2(artifact) and path.suffix == ".keras" and path.is_file()
            and not zipfile.is_zipfile(path)):
        # Keras 2 loads any file it recognises whatever its name (an HDF5 file as legacy h5):
        # the keras format would pass without testing a .keras archive at all.
        raise ValueError(f"{path.name} is not a .keras zip archive")
    try:
        return keras.models.load_model(str(artifact.path), compile=False, safe_mode=safe_mode)
    except TypeError as exc:
        missing = (compat.unregistered_objects(keras, artifact.path)
                   if read_by_keras2(artifact) else [])
        if not missing:
            raise
        # Keras 3's words for it, so messages.py names the class and the ini line alike.
        raise TypeError(f"Could not locate class '{missing[0]['class_name']}'. {keras.__name__} "
                        f"{keras.__version__} failed with: {exc}. Full object config: "
                        f"{missing[0]!r}") from exc


class _KerasFormat(BaseFormat):
    """What the Keras formats share: Keras models only, by-name restores, safe mode."""

    kinds = frozenset(KERAS_KINDS)
    restore_options = INTO_MODEL
    #: Keras 2 writes this format as legacy HDF5, which holds variables only.
    keras2_legacy_h5 = False

    def unsupported(self, model: Any, info: ModelInfo) -> str | None:
        if self.keras2_legacy_h5 and info.kind == KERAS2:
            held = compat.non_variable_weights(model)
            if held:
                return (f"Keras 2's legacy HDF5 holds variables only, and {', '.join(held)} "
                        "keeps state in another object (a lookup layer's vocabulary); use "
                        "the keras, tf_checkpoint or savedmodel format")
        return super().unsupported(model, info)

    def safe_mode_scope(self, on: bool) -> AbstractContextManager[None]:
        return keras_safe_mode(on)

    def diagnose(self, artifact: Artifact, exc: BaseException) -> list[str]:
        notes = super().diagnose(artifact, exc)
        if "safe_mode" in str(exc) and "Lambda" in str(exc):  # Keras' own refusal
            notes.append("the file holds code (a Lambda layer) and was loaded with Keras "
                         "safe_mode, which refuses to run it. If you trust this file, opt in "
                         "for this test only: @pytest.mark.persist(unsafe=True)")
        layer = failing_layer(exc)
        if layer is not None:
            notes.append(f"it failed while rebuilding layer {getattr(layer, 'name', '?')!r} "
                         f"({type(layer).__name__})")
        return notes


def failing_layer(exc: BaseException) -> Any:
    """The layer Keras was rebuilding or calling when `exc` was raised: the innermost
    traceback frame whose ``self`` or ``layer`` is a layer (not a whole model), or None.
    Keras' own messages often leave it out ("too many positional arguments")."""
    frames = [frame for frame, _ in traceback.walk_tb(exc.__traceback__)]
    for frame in reversed(frames):
        for local in ("self", "layer"):
            obj = frame.f_locals.get(local)
            kinds = {cls.__name__ for cls in type(obj).__mro__}
            if "Layer" in kinds and not kinds & {"Model", "Functional", "Sequential"}:
                return obj
    return None


class _KerasModelFormat(_KerasFormat):
    suffix = ""

    def save(self, model: Any, directory: Path, *, inputs: Inputs) -> Artifact:
        main = f"model{self.suffix}"
        model.save(str(directory / main))
        return self.new_artifact(directory, main, describe(model), inputs)

    def restore(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        """`keras.models.load_model`; or, by name, the file's weights into a model.

        By name when `into=` is given, or `build=` together with a by-name option (`var_map`,
        `only`, `strict=False`, `skip_mismatched`); `build=` alone keeps the whole-model load.
        """
        if options.into is not None or (options.build is not None and options.by_name):
            return self.restore_by_name(artifact, options)
        if options.by_name:
            raise needs_target(self.name)
        model = load_keras_model(artifact, safe_mode=options.safe_mode)
        return Restored(artifact, model, lambda args: run(model, args), takes_nest=True,
                        how="keras.models.load_model" + ("" if options.safe_mode else " (unsafe)"))

    def restore_by_name(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        raise NotImplementedError


class H5Format(_KerasModelFormat):
    name = "h5"
    suffix = ".h5"
    keras2_legacy_h5 = True
    description = "Keras full-model HDF5 (legacy), keras.models.load_model"

    def unsupported(self, model: Any, info: ModelInfo) -> str | None:
        if info.kind == KERAS and info.detail.startswith("Keras subclassed"):
            return ("legacy HDF5 stores the architecture of Sequential and Functional models "
                    "only (Keras 3 writes a subclassed one but cannot load it back); use the "
                    "keras or weights_h5 format")
        if info.kind == KERAS2 and "subclassed" in info.detail:
            return ("legacy HDF5 stores the architecture of Sequential and Functional models "
                    "only (Keras 2 refuses to save a subclassed one to it); use the keras, "
                    "weights_h5, tf_checkpoint or savedmodel format")
        return super().unsupported(model, info)

    def saved_names(self, artifact: Artifact, options: RestoreOptions) -> SavedVariables:
        """The file's weights as ``<layer name>/<weight>`` (``enc/kernel``), read with h5py."""
        return read_legacy_h5(artifact.path, fmt=self.name, allow=not options.safe_mode)

    def restore_by_name(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        return restore_legacy_h5_by_name(self.name, artifact, options)

    def diagnose(self, artifact: Artifact, exc: BaseException) -> list[str]:
        notes = super().diagnose(artifact, exc)
        unknown = re.search(r"Unknown layer: '(\w+)'", str(exc))
        layer = failing_layer(exc)
        name = unknown.group(1) if unknown else type(layer).__name__ if layer else None
        # a class Keras could not find: registered only as package>name ([...]), by its bare
        # name (None: not the cause), or under no name at all ([])
        registered = _registered_as(name) if unknown and name else None
        if name and _is_keras_operation(name):
            notes.append(
                f"'{name}' is also a Keras operation, which Keras 3 records in a Functional "
                "model's config when the model applies it to a tensor (`a + b` is Add, the "
                "mask of Embedding(mask_zero=True) feeding an RNN is NotEqual, keras.ops "
                "calls alike): its legacy HDF5 loader cannot rebuild operations (it fails, or "
                "takes one for the layer of the same name). Save such a model as .keras (the "
                "keras format loads it), or leave h5 out for this test with "
                "@pytest.mark.persist(exclude=['h5'])")
        elif registered:
            notes.append(
                f"'{name}' is registered as {' and '.join(map(repr, registered))} "
                "(keras.saving.register_keras_serializable, as keras-hub registers its "
                "models), but the legacy HDF5 loader looks a custom class up by its bare name "
                "only. The keras format loads it; for h5, register the class by its bare name "
                f"too (in conftest.py: keras.saving.get_custom_objects()[{name!r}] = "
                "<the class>), or leave h5 out with @pytest.mark.persist(exclude=['h5'])")
        elif registered == [] and name and (defined := _defined_in(name)):
            notes.append(
                f"a layer class {name!r} is defined in {' and '.join(defined)} (imported here) "
                "but registered under no name, and the legacy HDF5 file records only the bare "
                "class name: register it (@keras.saving.register_keras_serializable() on the "
                f"class, or in conftest.py keras.saving.get_custom_objects()[{name!r}] = "
                "<the class>); the keras format finds it by its module without that")
        return notes


def _registered_as(name: str) -> list[str] | None:
    """The ``package>name`` keys under which the Keras packages loaded here (keras, tf_keras)
    registered a class called `name`; None when one registered it by its bare name."""
    found: list[str] = []
    for package in ("keras", "tf_keras"):
        saving = getattr(sys.modules.get(package), "saving", None)
        registry: dict[str, Any] = getattr(saving, "get_custom_objects", dict)()
        if name in registry:
            return None
        found += sorted(k for k in registry if k.endswith(f">{name}"))
    return found


def _defined_in(name: str) -> list[str]:
    """Where a Keras layer class called `name` is defined among the modules imported here
    (``module.Name``, at most three)."""
    found = []
    for module_name, module in list(sys.modules.items()):
        cls = getattr(module, "__dict__", {}).get(name)  # no module __getattr__ side effects
        if (isinstance(cls, type) and cls.__module__ == module_name
                and any(base.__name__ == "Layer" for base in cls.__mro__)):
            found.append(f"{module_name}.{name}")
    return sorted(found)[:3]


def _is_keras_operation(name: str) -> bool:
    """Whether `name` is a Keras 3 operation class (keras.ops), not a layer."""
    try:
        from keras.src import ops
        from keras.src.layers import Layer
        from keras.src.ops.operation import Operation
    except ImportError:  # Keras 2: no operations in its configs
        return False
    cls = getattr(ops, name, None)
    return isinstance(cls, type) and issubclass(cls, Operation) and not issubclass(cls, Layer)


def restore_legacy_h5_by_name(fmt: str, artifact: Artifact, options: RestoreOptions) -> Restored:
    """Layer-name restore of a legacy HDF5 file (a full model, or Keras 2 weights).

    Keras' ``load_weights(by_name=True)`` when the names line up as saved, the file's datasets
    read with h5py and assigned when mapped or selected. Either way every variable is accounted
    for (Keras' own by-name load skips unknown layers silently).
    """
    path = str(artifact.path)

    def load(model: Any, report: RestoreReport) -> str | None:
        if options.maps or report.mismatched:
            return None
        with warnings.catch_warnings():  # each skip is in the report's notes already
            warnings.filterwarnings("ignore", message="Skipping loading")
            model.load_weights(path, by_name=True, skip_mismatch=options.skip_mismatched)
        return ("model.load_weights(by_name=True"
                + (", skip_mismatch=True)" if options.skip_mismatched else ")"))

    saved = read_legacy_h5(artifact.path, fmt=fmt, allow=not options.safe_mode)
    return restore_with(fmt, artifact, options, ByName(saved, load=load, display="h5"),
                        how="h5py read + assign by layer name")


class KerasFormat(_KerasModelFormat):
    name = "keras"
    suffix = ".keras"
    description = "Keras v3 .keras archive, keras.models.load_model"

    def saved_names(self, artifact: Artifact, options: RestoreOptions) -> SavedVariables:
        """The archive's ``model.weights.h5`` datasets by path (``layers/dense/vars/0``)."""
        allow = not options.safe_mode  # streamed to a temporary file, never whole in memory
        spill = spill_member(artifact.path, "model.weights.h5", fmt=self.name, allow=allow)
        return read_weights_file(spill, source=f"{artifact.path}:model.weights.h5",
                                 fmt=self.name, allow=allow)

    def restore_by_name(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        if artifact.model_kind == KERAS2:
            raise TypeError(
                f"[{self.name}] a by-name restore (into=, var_map, only, strict, "
                "skip_mismatched) of a Keras 2 .keras archive is not supported: its weights "
                "are named by class and position, not by layer; use the h5 or weights_h5 "
                "format (Keras 2's load_weights(by_name=True)), or keras.models.load_model")
        return restore_with(self.name, artifact, options,
                            ByName(self.saved_names(artifact, options)),
                            how="model.weights.h5 of the archive, read with h5py, by path")


def _h5_strings(group: Any, name: str) -> list[str]:
    """A string-list attribute of a legacy HDF5 group (Keras chunks long ones: name0, name1...)."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values.extend(group.attrs[f"{name}{i}"])
            i += 1
    return [v.decode("utf8") if hasattr(v, "decode") else str(v) for v in values]


def read_legacy_h5(path: Path, *, fmt: str = "h5", allow: bool = False) -> SavedVariables:
    """The weights of a legacy Keras HDF5 file (full model or weights only), by layer name.

    Each layer group lists its weights in ``weight_names``; an entry is named
    ``<layer name>/<weight>`` (see `h5_layer_weight_names`), the name a Keras model's variable
    answers to as well. Refused (containment.check_h5) if it reads other files or declares
    what it does not store, unless `allow`.
    """
    import h5py

    check_h5(path, source=path, fmt=fmt, allow=allow)
    entries: dict[str, tuple[tuple[int, ...], Any]] = {}
    where: dict[str, str] = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        layers = _h5_strings(root, "layer_names")
        if "top_level_model_weights" in root:
            layers.append("top_level_model_weights")
        for layer in layers:
            group = root[layer]
            weight_names = _h5_strings(group, "weight_names")
            for name, weight in zip(h5_layer_weight_names(layer, weight_names), weight_names,
                                    strict=True):
                dataset = group[weight]
                entries[name] = (tuple(dataset.shape), dataset.dtype)
                where[name] = dataset.name

    def read(name: str) -> np.ndarray:
        with h5py.File(path, "r") as f:
            return np.asarray(f[where[name]])

    return SavedVariables(entries, read, source=str(path))


def read_weights_file(file: Any, *, source: str | None = None, fmt: str = "weights_h5",
                      allow: bool = False) -> SavedVariables:
    """A Keras 3 `.weights.h5` (a path or a file object) as SavedVariables named by dataset
    path (``layers/dense/vars/0``), the names `models.variables` gives Keras variables.
    Refused as read_legacy_h5 is."""
    import h5py

    check_h5(file, source=source or file, fmt=fmt, allow=allow)
    found: dict[str, tuple[tuple[int, ...], Any]] = {}
    with h5py.File(file, "r") as f:
        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                found[name] = (tuple(obj.shape), obj.dtype)

        f.visititems(visit)

    def read(name: str) -> np.ndarray:
        if hasattr(file, "seek"):
            file.seek(0)
        with h5py.File(file, "r") as f:
            return np.asarray(f[name])

    return SavedVariables(found, read, source=source or str(file))


class WeightsH5Format(_KerasFormat):
    name = "weights_h5"
    description = ("Keras model.save_weights('.weights.h5'; Keras 2: legacy '.h5'), "
                   "load_weights into a rebuilt model")
    needs_build = True
    keras2_legacy_h5 = True
    save_options = {shards.OPTION: float}

    def save(self, model: Any, directory: Path, *, inputs: Inputs,
             max_shard_mb: float | None = None) -> Artifact:
        info = describe(model)
        # Keras 2 writes its own (v3) layout for a `.weights.h5` name; a plain `.h5` gets the
        # legacy layer-named file that its load_weights(by_name=True) reads.
        main = "model_weights.h5" if info.kind == KERAS2 else "model.weights.h5"
        path, why = shards.save_keras_weights(model, directory, main, max_shard_mb)
        artifact = self.new_artifact(directory, path.name, info, inputs)
        if max_shard_mb is not None:
            shards.mark(artifact, sorted(directory.glob("model_*.weights.h5")), why)
        return artifact

    def saved_names(self, artifact: Artifact, options: RestoreOptions) -> SavedVariables:
        """The file's datasets by path (``layers/dense/vars/0``), read with h5py.

        Keras 2 writes a legacy HDF5 weights file (layer groups): ``<layer>/<weight>`` names.
        """
        allow = not options.safe_mode
        if artifact.model_kind == KERAS2:
            return read_legacy_h5(artifact.path, fmt=self.name, allow=allow)
        shards.check_recorded(artifact)
        if artifact.path.suffix == ".json":  # sharded: the manifest and its shards
            return shards.read_sharded_weights(artifact.path, fmt=self.name, allow=allow)
        return read_weights_file(artifact.path, fmt=self.name, allow=allow)

    def restore(self, artifact: Artifact, options: RestoreOptions) -> Restored:
        """`model.load_weights` into `into` or a fresh `build()`; by name with h5py.

        The file's dataset paths are the names `models.variables` gives Keras variables, so
        the report names what is missing or unused even where load_weights would not. With
        by-name options (Keras refuses ``by_name`` on a `.weights.h5`) the datasets are read
        with h5py and assigned by name.
        """
        if options.by_name and artifact.model_kind == KERAS2:
            return restore_legacy_h5_by_name(self.name, artifact, options)
        path = str(artifact.path)

        def load(model: Any, report: RestoreReport) -> str | None:
            if options.by_name or not report.everything_restored:
                return None
            model.load_weights(path)
            return "model.load_weights"

        return restore_with(self.name, artifact, options,
                            ByName(self.saved_names(artifact, options), load=load),
                            how="h5py read + assign by dataset path")


@contextlib.contextmanager
def keras_safe_mode(on: bool) -> Iterator[None]:
    """Keras safe mode for the block when `on`, whatever was switched on globally.

    `keras.config.enable_unsafe_deserialization()` (a user's conftest, any imported library)
    overrides the explicit ``load_model(..., safe_mode=True)`` of a `.keras` file in Keras 3
    (the global setting wins over the argument); a scope does not lose to it.
    """
    with contextlib.ExitStack() as stack:
        for scope in compat.safe_mode_scopes() if on else []:  # Keras 3 and Keras 2's own
            stack.enter_context(scope)
        yield
