"""The plugin's own hooks. Other plugins and conftest files implement them by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .registry import FormatRegistry

hookspec = pluggy.HookspecMarker("pytest")


@hookspec(historic=True)
def pytest_modelpersist_register_formats(registry: FormatRegistry) -> None:
    """Register persistence formats with ``registry.register(fmt)``.

    The seven built-in formats are registered through this same hook. The hook is historic:
    a plugin or conftest registered later (a conftest in a sub-directory) is still called.
    """
