"""The options of a restore, parsed once for every format (no numpy, no TensorFlow).

``persist.restore(artifact, **options)`` and ``persist.check(model, inputs, **options)`` hand
the user's keywords to :func:`parse_restore_options` with the names the format declares in its
`restore_options`; a format receives the parsed :class:`RestoreOptions`. A name the format
does not take (``into=`` on `pb`, a misspelled ``varmap=``) is the same
:class:`~pytest_modelpersist.errors.RestoreOptionError` for every format.

The by-name options (see `restore.readers.ByName`):

* ``var_map`` -- saved name -> target variable (or its name); keys ending in ``/`` are prefix
  maps in the style of ``init_from_checkpoint`` (``{'old_scope/': 'new_scope/'}``);
* ``only`` -- restore just these (saved or target names, prefixes, variables); every other
  variable of the target keeps its current value;
* ``strict`` -- missing or mismatched variables fail (the default), or are only reported;
* ``skip_mismatched`` -- a shape or dtype mismatch skips that variable instead of failing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import RestoreOptionError
from .naming import closest

#: Options that restore by name into a model.
BY_NAME = ("var_map", "only", "strict", "skip_mismatched")
#: Where a by-name restore goes: a fresh `build()` or the given model.
TARGET = ("build", "into")
#: Taken by every format: `build` is the model's code, used by the formats that need it (a
#: parametrized test passes it to all), `safe_mode` is the plugin's setting.
UNIVERSAL = frozenset({"build", "safe_mode"})
#: What a format restoring by name into a given model declares in its `restore_options`.
INTO_MODEL = frozenset({"into", *BY_NAME})


@dataclass(frozen=True)
class RestoreOptions:
    """One restore's options: the target, the by-name matching, safe mode, format extras.

    `safe_mode` is the plugin's (the `persist` marker's ``unsafe=True`` turns it off); every
    format receives it. `extra` holds the options a format declares besides the common ones
    (`ckpt`'s ``checkpoint``, `pb`'s ``grappler``), already checked against its declaration.
    """

    build: Callable[[], Any] | None = None
    into: Any = None
    var_map: Mapping[str, Any] | None = None
    only: Sequence[Any] | None = None
    strict: bool = True
    skip_mismatched: bool = False
    safe_mode: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.var_map is not None and not isinstance(self.var_map, Mapping):
            raise RestoreOptionError(
                "var_map must be a dict {saved name or 'prefix/': target variable, name or "
                f"'prefix/'}}, not {type(self.var_map).__name__}")
        if isinstance(self.only, (str, bytes)):
            raise RestoreOptionError(
                f"only must be a list of names, not the string {self.only!r}")
        if self.build is not None and not callable(self.build):
            raise RestoreOptionError(f"build= must be a zero-argument callable returning a "
                                     f"fresh model, not {type(self.build).__name__}")

    @property
    def by_name(self) -> bool:
        """True when the user asked for anything but a plain same-name restore."""
        return (bool(self.var_map) or self.only is not None or self.skip_mismatched
                or not self.strict)

    @property
    def maps(self) -> bool:
        """True when names are remapped or selected (a whole-file loader cannot honour it)."""
        return bool(self.var_map) or self.only is not None

    @property
    def into_model(self) -> bool:
        """True when the restore has a target model: `into=`, or `build=` (a fresh one)."""
        return self.into is not None or self.build is not None

    def get(self, name: str, default: Any = None) -> Any:
        """A format-specific option (declared in the format's `restore_options`)."""
        return self.extra.get(name, default)

    def without_target(self) -> RestoreOptions:
        """These options for a restore from the files alone: no build, into, by-name options."""
        return dataclasses.replace(self, build=None, into=None, var_map=None, only=None,
                                   strict=True, skip_mismatched=False)

    def given(self) -> dict[str, Any]:
        """The options as keywords, without the defaults (what a subprocess loader is sent)."""
        defaults = RestoreOptions()
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "extra" and getattr(self, f.name) != getattr(defaults, f.name)}
        return {**out, **self.extra}


_COMMON = frozenset({*TARGET, *BY_NAME})


def needs_target(fmt: str) -> RestoreOptionError:
    """The error for by-name options without a model to restore into."""
    return RestoreOptionError(
        f"[{fmt}] var_map/only/strict/skip_mismatched restore into a model: pass into=<model> "
        "or build=<callable> (a restore from the files alone brings the model back as saved)")


def parse_restore_options(fmt: str, accepted: Iterable[str], raw: Mapping[str, Any], *,
                          safe_mode: bool = True) -> RestoreOptions:
    """The user's restore keywords for format `fmt`, checked against what it `accepted`.

    A keyword given as None counts as not given. `build` and `safe_mode` are taken by every
    format (UNIVERSAL); `safe_mode` in `raw` overrides the plugin's setting. Raises
    RestoreOptionError naming every option the format does not take.
    """
    accepted = frozenset(accepted) | UNIVERSAL
    given = {k: v for k, v in raw.items() if v is not None}
    safe_mode = bool(given.pop("safe_mode", safe_mode))
    refused = sorted(set(given) - accepted)
    if refused:
        raise RestoreOptionError(refusal(fmt, refused, accepted))
    common = {k: v for k, v in given.items() if k in _COMMON}
    extra = {k: v for k, v in given.items() if k not in _COMMON}
    return RestoreOptions(**common, safe_mode=safe_mode, extra=extra)


def refusal(fmt: str, refused: Sequence[str], accepted: Iterable[str]) -> str:
    """The one message for options a format does not take (a typo gets a suggestion)."""
    accepted = sorted(set(accepted) - UNIVERSAL)
    hints = []
    for name in refused:
        near = [] if name in _COMMON else closest(name, [*accepted, *UNIVERSAL], 1)
        hints.append(f"{name!r} (did you mean {near[0]!r}?)" if near else repr(name))
    takes = ", ".join(["build", *accepted])
    return (f"[{fmt}] unsupported restore option(s) {', '.join(hints)}: the {fmt} format "
            f"takes {takes}")
