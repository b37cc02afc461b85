"""The built-in formats' hook implementation: they register like any third-party plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from . import BUILTIN, OPT_IN, LazyFormat

if TYPE_CHECKING:
    from ..registry import FormatRegistry


class BuiltinFormats:
    """Registered with pytest's plugin manager like any third-party plugin."""

    @pytest.hookimpl
    def pytest_modelpersist_register_formats(self, registry: FormatRegistry) -> None:
        for name in BUILTIN:
            registry.register(LazyFormat(name), in_all=name not in OPT_IN)
