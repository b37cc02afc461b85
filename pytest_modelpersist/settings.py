"""The configuration object: command line, ini and `persist` markers, parsed and checked once.

`PersistSettings` is built in ``pytest_configure`` and kept in ``config.stash``; the collection,
golden-ownership and summary plugins and the fixture read it and never parse options
themselves. Bad values are ``pytest.UsageError`` (options, ini) or a collection failure naming
the test, the keyword, the value and the type expected (markers). No numpy, no TensorFlow.
"""

from __future__ import annotations

import contextlib
import math
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import decision
from ._names import ALL
from .compare import Tolerance
from .errors import FormatContractError, UnknownFormatError
from .expected import is_xfail_map
from .loaders import LOADERS, parse_loaders
from .loaders.runtimes import INI, Runtime, parse_runtimes
from .registry import FormatRegistry

SETTINGS_KEY = pytest.StashKey["PersistSettings"]()


@dataclass(frozen=True)
class CheckOptions:
    """Tolerance and safety settings merged from ini, the marker and the call (in that order)."""

    rtol: float | Mapping[str, float] | None = None  # a mapping: per output path
    atol: float | Mapping[str, float] | None = None
    exact: bool = False
    table: Mapping[str, Tolerance] = field(default_factory=dict)
    #: Decision-level options (decision.POLICY_OPTIONS), each a value or {output path: value}.
    decision: Mapping[str, Any] = field(default_factory=dict)
    #: Converter options (onnx's opset, tflite's select_tf_ops); each format takes the ones
    #: it declares in its `save_options`.
    convert: Mapping[str, Any] = field(default_factory=dict)
    safe_mode: bool = True
    golden: bool = True
    timeout: float = 300.0
    subprocess_path: tuple[str, ...] = ()
    subprocess_imports: tuple[str, ...] = ()
    #: Other interpreters as loaders (ini persist_runtimes), by label.
    runtimes: Mapping[str, Runtime] = field(default_factory=dict)
    #: Shards of at most this many MB (2**20 bytes) where the format can; None: whole files.
    max_shard_mb: float | None = None

    def merged(self, **overrides: Any) -> CheckOptions:
        """These options with the given (not None) values replacing theirs."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return CheckOptions(**{**self.__dict__, **given})

    def with_decision(self, **given: Any) -> CheckOptions:
        """These options with the call's decision options (not None) over ini's and the
        marker's, per option. ValueError says why a value is not valid."""
        merged = {**self.decision, **{k: v for k, v in given.items() if v is not None}}
        for key, value in merged.items():
            problem = decision.check_option(key, value)
            if problem:
                raise ValueError(f"{key}={value!r}: {problem}")
        return self.merged(decision=merged)

    def scalar_tolerance(self, *, strictest: bool = False) -> tuple[float | None, float | None]:
        """(rtol, atol) given for every output; None where given per output path (or not),
        or with `strictest` the smallest per-output value (what a layer is held to: layers
        are not outputs, and a divergence looser than every output's tolerance is no lead)."""
        def one(v: Any) -> float | None:
            if isinstance(v, Mapping):
                return min(v.values(), default=None) if strictest else None
            return v
        return one(self.rtol), one(self.atol)


# ---- marker keywords: name -> (check, what a valid value is) -------------------------------


def _is_names(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, (list, tuple, set, frozenset))
                                  and all(isinstance(s, str) for s in v))


def _is_tolerance(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and v >= 0)


def _is_timeout(v: Any) -> bool:
    return _is_tolerance(v) and v > 0


def _is_tolerances(v: Any) -> bool:
    """A tolerance, or {output path: tolerance}."""
    return _is_tolerance(v) or (isinstance(v, Mapping) and all(
        isinstance(k, str) and _is_tolerance(t) for k, t in v.items()))


def _is_options(v: Any) -> bool:
    return isinstance(v, Mapping) and all(isinstance(k, str) for k in v)


MARKER_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "formats": (_is_names, "a format name or a list of format names"),
    "exclude": (_is_names, "a format name or a list of format names"),
    "loaders": (_is_names, "a loader name or a list of loader names"),
    "rtol": (_is_tolerances, "a finite number >= 0, or {output path: number}"),
    "atol": (_is_tolerances, "a finite number >= 0, or {output path: number}"),
    "exact": (lambda v: isinstance(v, bool), "a bool (True or False)"),
    "golden": (lambda v: isinstance(v, bool), "a bool (True or False)"),
    "unsafe": (lambda v: isinstance(v, bool), "a bool (True or False)"),
    "timeout": (_is_timeout, "a number of seconds > 0"),
    "max_shard_mb": (lambda v: v is None or _is_timeout(v),
                     "a number of MB > 0 (2**20 bytes), or None for whole files"),
    "xfail": (is_xfail_map, 'a dict {"format" or "format-loader": "reason"}'),
    # Names and values are checked against the formats' declarations (PersistSettings).
    "convert": (_is_options, "a dict of converter options, {'opset': 13}"),
}
MARKER_KEYWORDS = (*MARKER_TYPES, *decision.POLICY_OPTIONS)


def _marker_problem(key: str, value: Any) -> str | None:
    """Why `value` is not valid for the marker keyword `key` (None when it is)."""
    if key in decision.POLICY_OPTIONS:
        return decision.check_option(key, value)
    valid, expected = MARKER_TYPES[key]
    return None if valid(value) else f"expected {expected}, got {type(value).__name__} {value!r}"


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
            problem = None if value is None else _marker_problem(key, value)
            if problem:
                pytest.fail(f"{node.nodeid}: @pytest.mark.persist({key}={value!r}): {problem}",
                            pytrace=False)
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


#: How a converter option's declared type reads in messages.
TYPE_WORDS = {bool: "a bool (True or False)", int: "an int", float: "a number", str: "a string"}
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _fits(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def convert_problem(options: Mapping[str, Any], declared: Mapping[str, tuple[type, list[str]]]
                    ) -> str | None:
    """Why converter `options` are not valid (None when they are): each name must be declared
    by a registered format (`declared`: name -> (type, formats)), each value of that type."""
    unknown = sorted(set(options) - set(declared))
    if unknown:
        known = "; ".join(f"{k} ({TYPE_WORDS.get(t, t.__name__)}, for {', '.join(f)})"
                          for k, (t, f) in sorted(declared.items()))
        return (f"unknown converter option(s) {', '.join(unknown)}; known: "
                f"{known or '(none: no registered format takes converter options)'}")
    for key, value in options.items():
        kind, formats = declared[key]
        if not _fits(value, kind):
            return (f"{key}={value!r}: expected {TYPE_WORDS.get(kind, kind.__name__)} (for "
                    f"{', '.join(formats)}), got {type(value).__name__}")
    return None


def parse_convert(lines: list[str], declared: Mapping[str, tuple[type, list[str]]]
                  ) -> dict[str, Any]:
    """`persist_convert` ini lines (``opset = 13``, ``select_tf_ops = true``) -> options, read
    as the types the formats declare; pytest.UsageError names the line that cannot be read."""
    options: dict[str, Any] = {}
    for line in lines or []:
        if not line.strip():
            continue
        key, sep, raw = (part.strip() for part in line.partition("="))
        problem = None if sep else "write one 'option = value' per line"
        kind = declared[key][0] if key in declared else str
        value: Any = raw
        if problem is None and kind is bool:
            value = True if raw.lower() in _TRUE else False if raw.lower() in _FALSE else raw
        elif problem is None and kind in (int, float):
            with contextlib.suppress(ValueError):
                value = kind(raw)
        problem = problem or convert_problem({key: value}, declared)
        if problem:
            raise pytest.UsageError(f"ini persist_convert: cannot read {line!r}: {problem}")
        options[key] = value
    return options


def parse_decision(lines: list[str]) -> dict[str, Any]:
    """`persist_decision` ini lines (``agreement = argmax``); bad ones are a UsageError."""
    try:
        return decision.parse_ini(lines or [])
    except ValueError as exc:
        raise pytest.UsageError(f"ini persist_decision: {exc}") from None


def running_on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def parse_runtime_options(config: pytest.Config) -> dict[str, Runtime]:
    """ini persist_runtimes (paths from rootdir), then --persist-runtime (paths from the
    invocation directory; a label given in both: the command line's). UsageError names the
    source and the line."""
    reserved = (*LOADERS, ALL)
    try:
        found = parse_runtimes(config.getini("persist_runtimes"), root=config.rootpath,
                               source=INI, reserved=reserved)
        found.update(parse_runtimes(config.getoption("persist_runtime") or [],
                                    root=config.invocation_params.dir,
                                    source="--persist-runtime", reserved=reserved))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    return found


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
    #: `persist_runtimes` ini and --persist-runtime: other interpreters as loaders, by label.
    runtimes: dict[str, Runtime] = field(default_factory=dict)
    #: `persist_decision` ini: decision options of every check.
    decision: dict[str, Any] = field(default_factory=dict)
    #: `persist_convert` ini: converter options of every save (each format takes its own).
    convert: dict[str, Any] = field(default_factory=dict)
    #: `persist_max_shard_mb` ini: shard size of every save (None: whole files).
    max_shard_mb: float | None = None
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
        runtimes = parse_runtime_options(config)
        loaders = parse_loaders(*_option_or_ini(config, "persist_loaders"),
                                error=pytest.UsageError, runtimes=list(runtimes))
        for label in loaders:  # a selected runtime must be there: one error, not N failures
            problem = runtimes[label].problem() if label in runtimes else None
            if problem:
                raise pytest.UsageError(problem)
        timeout = _timeout(*_option_or_ini(config, "persist_timeout"))
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
            decision=parse_decision(config.getini("persist_decision")), runtimes=runtimes,
            max_shard_mb=_max_shard_mb(*_option_or_ini(config, "persist_max_shard_mb")),
        )
        convert_lines = config.getini("persist_convert")
        if convert_lines:  # reading the declarations imports the built-in formats' modules
            settings.convert = parse_convert(convert_lines, registry.save_options())
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None and "modelpersist_run" in workerinput:
            settings.run_id = str(workerinput["modelpersist_run"])  # the controller's run
        return settings

    def convert_problem(self, options: Mapping[str, Any] | None) -> str | None:
        """Why a marker's converter options are not valid for the registered formats."""
        return convert_problem(options, self.registry.save_options()) if options else None

    def check_options(self, marker: Mapping[str, Any]) -> CheckOptions:
        """The CheckOptions of one test: ini and command line, then its (checked) marker."""
        return CheckOptions(
            rtol=marker.get("rtol"), atol=marker.get("atol"),
            exact=bool(marker.get("exact", False)), table=self.tolerances,
            decision={**self.decision, **{k: marker[k] for k in decision.POLICY_OPTIONS
                                          if marker.get(k) is not None}},
            convert={**self.convert, **(marker.get("convert") or {})},
            safe_mode=not marker.get("unsafe", False), golden=marker.get("golden", True)
            is not False, timeout=float(marker.get("timeout") or self.timeout),
            subprocess_path=self.subprocess_path, subprocess_imports=self.subprocess_imports,
            runtimes=self.runtimes, max_shard_mb=marker.get("max_shard_mb", self.max_shard_mb),
        )


def _max_shard_mb(spec: Any, source: str) -> float | None:
    """persist_max_shard_mb: MB > 0, or empty (ini) / 0 (command line) for whole files; else
    a pytest.UsageError naming `source`."""
    if spec in (None, ""):
        return None
    try:
        value = float(spec)
        if source.startswith("--") and value == 0:
            return None  # the command line's way to turn an ini's sharding off
        if not (value > 0 and math.isfinite(value)):
            raise ValueError
    except ValueError:
        whole = "0" if source.startswith("--") else "nothing"
        raise pytest.UsageError(f"{source}: expected a number of MB > 0 (2**20 bytes), or "
                                f"{whole} for whole files; got {spec!r}") from None
    return value


def _timeout(spec: Any, source: str) -> float:
    """persist_timeout: seconds > 0 (default 300); a pytest.UsageError naming `source`."""
    try:
        timeout = float(300 if spec in (None, "") else spec)
        if not timeout > 0 or not math.isfinite(timeout):
            raise ValueError
    except ValueError:
        raise pytest.UsageError(f"{source}: expected a number of seconds > 0, got "
                                f"{spec!r}") from None
    return timeout
