"""Import a module on first attribute access: keeps `pytest --help` and collection light."""

from __future__ import annotations

import importlib
import types
from typing import Any


class LazyModule(types.ModuleType):
    """Stands for a module until one of its attributes is used."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_target"] = name

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__dict__["_lazy_target"])
        return getattr(module, attr)


def lazy_module(name: str) -> Any:
    """A stand-in for `import name` that imports it when first used."""
    return LazyModule(name)
