"""The configuration object: command line, ini and `persist` markers, parsed and checked once.

`PersistSettings` is built in ``pytest_configure`` and kept in ``config.stash``; the collection,
golden-ownership and summary plugins and the fixture read it and never parse options
themselves. Bad values are ``pytest.UsageError`` (options, ini) or a collection failure naming
the test, the keyword, the value and the type expected (markers). No numpy, no TensorFlow.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .compare import Tolerance
from .errors import FormatContractError, UnknownFormatError
from .expected import is_xfail_map
from .loaders import parse_loaders
from .registry import FormatRegistry

SETTINGS_KEY = pytest.StashKey["PersistSettings"]()


@dataclass(frozen=True)
class CheckOptions:
    """Tolerance and safety settings merged from ini, the marker and the call (in that order)."""

    rtol: float | None = None
    atol: float | None = None
    exact: bool = False
    table: Mapping[str, Tolerance] = field(default_factory=dict)
    safe_mode: bool = True
    golden: bool = True
    timeout: float = 300.0
    subprocess_path: tuple[str, ...] = ()
    subprocess_imports: tuple[str, ...] = ()

    def merged(self, **overrides: Any) -> CheckOptions:
        given = {k: v for k, v in overrides.items() if v is not None}
        return CheckOptions(**{**self.__dict__, **given})


# ---- marker keywords: name -> (check, what a valid value is) -------------------------------


def _is_names(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, (list, tuple, set, frozenset))
                                  and all(isinstance(s, str) for s in v))


def _is_tolerance(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and v >= 0)


def _is_timeout(v: Any) -> bool:
    return _is_tolerance(v) and v > 0


MARKER_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "formats": (_is_names, "a format name or a list of format names"),
    "exclude": (_is_names, "a format name or a list of format names"),
    "loaders": (_is_names, "a loader name or a list of loader names"),
    "rtol": (_is_tolerance, "a finite number >= 0"),
    "atol": (_is_tolerance, "a finite number >= 0"),
    "exact": (lambda v: isinstance(v, bool), "a bool (True or False)"),
    "golden": (lambda v: isinstance(v, bool), "a bool (True or False)"),
    "unsafe": (lambda v: isinstance(v, bool), "a bool (True or False)"),
    "timeout": (_is_timeout, "a number of seconds > 0"),
    "xfail": (is_xfail_map, 'a dict {"format" or "format-loader": "reason"}'),
}
MARKER_KEYWORDS = tuple(MARKER_TYPES)


def marker_options(node: Any) -> dict[str, Any]:
    """The `persist` markers' keywords of a test, type-checked (a bad one fails collection).

    Markers on the function, class and module merge; the closest one wins per keyword. A value
    of the wrong type is refused, never coerced: ``unsafe="false"`` is a string, not False.
    """
    merged: dict[str, Any] = {}
    for mark in node.iter_markers("persist"):  # closest first
        if mark.args:
            pytest.fail(f"{node.nodeid}: @pytest.mark.persist takes keywords only "
                        f"({', '.join(MARKER_KEYWORDS)}), got positional {mark.args!r}",
                        pytrace=False)
        unknown = sorted(set(mark.kwargs) - set(MARKER_KEYWORDS))
        if unknown:
            pytest.fail(f"{node.nodeid}: @pytest.mark.persist got unknown keyword(s) "
                        f"{', '.join(unknown)}; allowed: {', '.join(MARKER_KEYWORDS)}",
                        pytrace=False)
        for key, value in mark.kwargs.items():
            valid, expected = MARKER_TYPES[key]
            if value is not None and not valid(value):
                pytest.fail(f"{node.nodeid}: @pytest.mark.persist({key}={value!r}): expected "
                            f"{expected}, got {type(value).__name__} {value!r}", pytrace=False)
            merged.setdefault(key, value)
    return merged


def parse_tolerances(lines: list[str]) -> dict[str, Tolerance]:
    """`persist_tolerances` ini lines: ``float32 = 1e-4, 1e-5`` (dtype = rtol, atol)."""
    table: dict[str, Tolerance] = {}
    for line in lines or []:
        if not line.strip():
            continue
        try:
            dtype, values = (s.strip() for s in line.split("=", 1))
            rtol, atol = (float(v) for v in values.split(","))
        except ValueError:
            raise pytest.UsageError(f"ini persist_tolerances: cannot read {line!r}; "
                                    "write one 'dtype = rtol, atol' per line") from None
        table[dtype] = Tolerance(rtol, atol)
    return table


def running_on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _option_or_ini(config: pytest.Config, name: str) -> tuple[Any, str]:
    value = config.getoption(name)
    if value is not None:
        return value, "--" + name.replace("_", "-")
    return config.getini(name), f"ini option {name}"


@dataclass
class PersistSettings:
    """Everything the options, ini and format hook say, for one run (see module docstring)."""

    rootpath: Path
    registry: FormatRegistry
    formats: list[str]
    loaders: list[str]
    update_golden: bool
    remove_unused: bool
    golden_root: Path | None
    timeout: float
    tolerances: dict[str, Tolerance]
    cache_enabled: bool
    subprocess_path: tuple[str, ...]
    subprocess_imports: tuple[str, ...]
    #: Identifies this run (shared by xdist workers): goldens written in it are recognised.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def from_config(cls, config: pytest.Config) -> PersistSettings:
        """Parse and check every option once; bad values are pytest.UsageError."""
        registry = FormatRegistry()
        pm = config.pluginmanager
        if not pm.has_plugin("modelpersist-builtin-formats"):
            from .formats import BuiltinFormats

            pm.register(BuiltinFormats(), "modelpersist-builtin-formats")
        try:
            config.hook.pytest_modelpersist_register_formats.call_historic(
                kwargs={"registry": registry})
        except FormatContractError as exc:  # a plugin's format breaks the contract
            raise pytest.UsageError(str(exc)) from None
        spec, source = _option_or_ini(config, "persist_formats")
        try:
            formats = registry.parse(spec or "all")
        except UnknownFormatError as exc:
            raise pytest.UsageError(f"{source}: {exc}") from None
        if not formats:
            raise pytest.UsageError(f"--persist-formats selects no format; known formats: "
                                    f"{', '.join(registry.names())} (or 'all')")
        loaders = parse_loaders(*_option_or_ini(config, "persist_loaders"),
                                error=pytest.UsageError)
        timeout_spec, source = _option_or_ini(config, "persist_timeout")
        try:
            timeout = float(300 if timeout_spec in (None, "") else timeout_spec)
            if not timeout > 0 or not math.isfinite(timeout):
                raise ValueError
        except ValueError:
            raise pytest.UsageError(f"{source}: expected a number of seconds > 0, got "
                                    f"{timeout_spec!r}") from None
        update = bool(config.getoption("update_golden"))
        if update and running_on_ci() and not config.getoption("allow_update_golden_on_ci"):
            raise pytest.UsageError(
                "--update-golden refused: CI is set, and goldens recorded by CI are never "
                "reviewed. Record them locally and commit them, or add "
                "--allow-update-golden-on-ci if this job really should write them.")
        golden_dir = config.getoption("golden_dir") or config.getini("golden_dir")
        settings = cls(
            rootpath=config.rootpath, registry=registry, formats=formats, loaders=loaders,
            update_golden=update, remove_unused=bool(config.getoption("remove_unused_goldens")),
            golden_root=Path(config.rootpath, golden_dir) if golden_dir else None,
            timeout=timeout, tolerances=parse_tolerances(config.getini("persist_tolerances")),
            cache_enabled=not config.getoption("persist_no_cache"),
            subprocess_path=tuple(str(Path(config.rootpath, p)) for p in
                                  config.getini("persist_subprocess_path")),
            subprocess_imports=tuple(config.getini("persist_subprocess_imports")),
        )
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None and "modelpersist_run" in workerinput:
            settings.run_id = str(workerinput["modelpersist_run"])  # the controller's run
        return settings

    def check_options(self, marker: Mapping[str, Any]) -> CheckOptions:
        """The CheckOptions of one test: ini and command line, then its (checked) marker."""
        return CheckOptions(
            rtol=marker.get("rtol"), atol=marker.get("atol"),
            exact=bool(marker.get("exact", False)), table=self.tolerances,
            safe_mode=not marker.get("unsafe", False), golden=marker.get("golden", True)
            is not False, timeout=float(marker.get("timeout") or self.timeout),
            subprocess_path=self.subprocess_path, subprocess_imports=self.subprocess_imports,
        )
