"""The seven built-in formats, registered through the same hook a third party implements."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .base import Artifact, BaseFormat, Format, Restored
from .frozen import FrozenGraphFormat
from .keras_formats import H5Format, KerasFormat, WeightsH5Format
from .tf1 import CkptFormat
from .tf2 import SavedModelFormat, TFCheckpointFormat

if TYPE_CHECKING:
    from ..registry import FormatRegistry

BUILTIN_FORMATS = (
    CkptFormat,
    TFCheckpointFormat,
    H5Format,
    WeightsH5Format,
    KerasFormat,
    SavedModelFormat,
    FrozenGraphFormat,
)

__all__ = ["Artifact", "BaseFormat", "Format", "Restored", "BUILTIN_FORMATS"]


class BuiltinFormats:
    """Registered with pytest's plugin manager like any third-party plugin."""

    @pytest.hookimpl
    def pytest_modelpersist_register_formats(self, registry: FormatRegistry) -> None:
        for fmt in BUILTIN_FORMATS:
            registry.register(fmt())
