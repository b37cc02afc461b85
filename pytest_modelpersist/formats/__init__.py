"""The seven built-in formats, registered through the same hook a third party implements.

They are registered as light stand-ins: a format's module (and numpy, TensorFlow) is imported
only when a test first uses it, so `pytest --help` and collecting a suite that never uses
`persist` stay fast. The hook implementation is in ``register.py``: this package imports no
pytest, as a runtime's loader child (loaders.runtimes) may have none.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Artifact, BaseFormat, Format, Restored, WrappedFormat

if TYPE_CHECKING:
    from .register import BuiltinFormats  # noqa: F401

#: name -> (module, class), in registration order.
BUILTIN = {
    "ckpt": ("tf1", "CkptFormat"),
    "tf_checkpoint": ("tf2", "TFCheckpointFormat"),
    "h5": ("keras_formats", "H5Format"),
    "weights_h5": ("keras_formats", "WeightsH5Format"),
    "keras": ("keras_formats", "KerasFormat"),
    "savedmodel": ("tf2", "SavedModelFormat"),
    "pb": ("frozen", "FrozenGraphFormat"),
    "tflite": ("tflite", "TFLiteFormat"),
    "tflite_float16": ("tflite", "TFLiteFloat16Format"),
    "tflite_dynamic": ("tflite", "TFLiteDynamicFormat"),
    "onnx": ("onnx", "OnnxFormat"),
}
#: Conversions run only when named (--persist-formats=all,tflite): not in 'all'.
OPT_IN = frozenset({"tflite", "tflite_float16", "tflite_dynamic", "onnx"})

__all__ = ["Artifact", "BaseFormat", "Format", "Restored", "WrappedFormat", "BUILTIN_FORMATS",
           "BuiltinFormats", "LazyFormat"]


def _load_class(name: str) -> Any:
    module, cls = BUILTIN[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


class LazyFormat(WrappedFormat):
    """A registered built-in format whose implementation is imported on first use.

    Like any wrapper it declares every member of `Format`; the real format is imported when
    a member is first read (collection reads `loaders`, a test the rest).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._real: Format | None = None

    @property
    def inner(self) -> Format:
        """The format object itself (imports its module)."""
        if self._real is None:
            self._real = _load_class(self.name)()
        return self._real

    def __repr__(self) -> str:
        return f"<persist format {self.name} (built-in)>"


def __getattr__(name: str) -> Any:
    if name == "BUILTIN_FORMATS":
        return tuple(_load_class(n) for n in BUILTIN)
    if name == "BuiltinFormats":
        from .register import BuiltinFormats

        return BuiltinFormats
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
