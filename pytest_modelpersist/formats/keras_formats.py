"""Keras formats: full-model HDF5 `h5`, weights-only `weights_h5`, and the `.keras` archive."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._tf import import_keras
from ..models import KERAS, Inputs, ModelInfo, RestoreReport, describe, run
from ..restoring import match_by_name
from .base import Artifact, BaseFormat, Restored, restore_into_rebuilt, spec_meta


def load_keras_model(artifact: Artifact, *, safe_mode: bool = True) -> Any:
    """`keras.models.load_model` without compiling; Lambda code runs only if safe_mode=False."""
    keras = import_keras()
    return keras.models.load_model(str(artifact.path), compile=False, safe_mode=safe_mode)


class _KerasModelFormat(BaseFormat):
    kinds = frozenset({KERAS})
    suffix = ""

    def save(self, model: Any, directory: Path, *, inputs: Inputs) -> Artifact:
        main = f"model{self.suffix}"
        model.save(str(directory / main))
        return self.new_artifact(directory, main, describe(model), input_specs=spec_meta(inputs))

    def restore(self, artifact: Artifact, *, build: Callable[[], Any] | None = None,
                safe_mode: bool = True, **options: Any) -> Restored:
        model = load_keras_model(artifact, safe_mode=safe_mode)
        return Restored(artifact, model, lambda args: run(model, args),
                        how="keras.models.load_model" + ("" if safe_mode else " (unsafe)"))


class H5Format(_KerasModelFormat):
    name = "h5"
    suffix = ".h5"
    description = "Keras full-model HDF5 (legacy), keras.models.load_model"

    def unsupported(self, model: Any, info: ModelInfo) -> str | None:
        if info.kind == KERAS and info.detail.startswith("Keras subclassed"):
            return ("legacy HDF5 stores the architecture of Sequential and Functional models "
                    "only (Keras 3 writes a subclassed one but cannot load it back); use the "
                    "keras or weights_h5 format")
        return super().unsupported(model, info)


class KerasFormat(_KerasModelFormat):
    name = "keras"
    suffix = ".keras"
    description = "Keras v3 .keras archive, keras.models.load_model"


def read_weights_h5(path: Path) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Every dataset of a `.weights.h5` as path -> (shape, dtype), read with h5py."""
    import h5py

    found: dict[str, tuple[tuple[int, ...], Any]] = {}
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                found[name] = (tuple(obj.shape), obj.dtype)

        f.visititems(visit)
    return found


class WeightsH5Format(BaseFormat):
    name = "weights_h5"
    kinds = frozenset({KERAS})
    description = "Keras model.save_weights('.weights.h5'), load_weights into a rebuilt model"
    needs_build = True

    def save(self, model: Any, directory: Path, *, inputs: Inputs) -> Artifact:
        main = "model.weights.h5"
        model.save_weights(str(directory / main))
        return self.new_artifact(directory, main, describe(model), input_specs=spec_meta(inputs))

    def restore(self, artifact: Artifact, *, build: Callable[[], Any] | None = None,
                into: Any = None, **options: Any) -> Restored:
        def fill(target: Any) -> RestoreReport:
            # The file's dataset paths are the names `variables()` gives Keras variables, so
            # the report names what is missing or unused even where load_weights would not.
            report = match_by_name(target, read_weights_h5(artifact.path))
            if report.complete:
                target.load_weights(str(artifact.path))
            return report

        return restore_into_rebuilt(self, artifact, build, fill, how="model.load_weights",
                                    target=into)

