"""pytest-modelpersist: model persistence (ckpt, h5, .keras, SavedModel, frozen pb) as tests.

Importing this package does not import TensorFlow.
"""

from __future__ import annotations

from .compare import DEFAULT_TOLERANCES, Tolerance
from .errors import ModelPersistError, PersistFailure, UnknownFormatError
from .formats.base import Artifact, BaseFormat, Format, Restored
from .models import GraphModel, RestoreReport
from .registry import FormatRegistry

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "BaseFormat",
    "DEFAULT_TOLERANCES",
    "Format",
    "FormatRegistry",
    "GraphModel",
    "ModelPersistError",
    "PersistFailure",
    "Restored",
    "RestoreReport",
    "Tolerance",
    "UnknownFormatError",
    "__version__",
]
