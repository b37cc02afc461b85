"""pytest-modelpersist: model persistence (ckpt, h5, .keras, SavedModel, frozen pb) as tests.

Importing this package imports neither TensorFlow nor numpy: the public names below load
their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "Artifact": "formats.base",
    "BaseFormat": "formats.base",
    "Format": "formats.base",
    "Restored": "formats.base",
    "DEFAULT_TOLERANCES": "compare",
    "Tolerance": "compare",
    "ModelPersistError": "errors",
    "PersistFailure": "errors",
    "PersistWarning": "errors",
    "UnknownFormatError": "errors",
    "GraphModel": "models",
    "RestoreReport": "models",
    "FormatRegistry": "registry",
}

__all__ = sorted(_PUBLIC) + ["__version__"]

if TYPE_CHECKING:
    from .compare import DEFAULT_TOLERANCES, Tolerance  # noqa: F401
    from .errors import (  # noqa: F401
        ModelPersistError,
        PersistFailure,
        PersistWarning,
        UnknownFormatError,
    )
    from .formats.base import Artifact, BaseFormat, Format, Restored  # noqa: F401
    from .models import GraphModel, RestoreReport  # noqa: F401
    from .registry import FormatRegistry  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
