"""The collection plugin: which (format, loader) items a test gets, and a test's golden identity.

A test requesting `persist` is parametrized last with one item per format (and loader) the
command line selects and its marker allows. Its golden identity is its node id without that
parameter: every format item of one test shares one golden, and no two tests share one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from .errors import UnknownFormatError
from .expected import unknown_keys, xfail_marks
from .loaders import INPROCESS, LOADERS, SUBPROCESS, applies, parse_loaders, prestart_subprocess
from .settings import PersistSettings, marker_options

if TYPE_CHECKING:
    from .archive import ArchiveSettings

NO_FORMAT = "no-format"
#: Why an item's marker is invalid, found after collection (a `pytest.param`'s marks).
MARKER_ERROR = pytest.StashKey[str]()


@dataclass(frozen=True)
class PersistParam:
    """One test item's format and loader; its id is the format, or format-loader, or
    format@LABEL for an archived artifact's item."""

    format: str
    loader: str = INPROCESS
    archive: str | None = None  # the archive label this item replays

    @property
    def id(self) -> str:
        if self.archive is not None:
            return f"{self.format}@{self.archive}"
        return self.format if self.loader == INPROCESS else f"{self.format}-{self.loader}"

    def __str__(self) -> str:
        return self.id


def golden_identity(item: Any) -> tuple[str, str]:
    """(golden name, owner id) of a test item: its id without the persist parameter.

    The owner is the node id minus the ``persist`` parameter (``m.py::TestA::test_x[v1-]``);
    the name is the part after the module, classes joined with ``.`` (``TestA.test_x[v1-]``),
    so methods of two classes and ids differing only in a trailing ``-`` stay apart. The
    persist id is always the id's last part (the plugin parametrizes last), joined by one ``-``.
    """
    nodeid = item.nodeid
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "persist" in callspec.params:
        param = callspec.params["persist"]
        own = str(param) if param is not None else NO_FORMAT
        ident = callspec.id
        if ident == own:
            rest = None
        elif ident.endswith("-" + own):
            rest = ident[: -len(own) - 1]
        else:  # not ours to strip (another plugin renamed ids): keep the whole id
            rest = ident
        base = item.originalname + (f"[{rest}]" if rest is not None else "")
        nodeid = nodeid[: len(nodeid) - len(item.name)] + base
    local = nodeid.split("::", 1)[1] if "::" in nodeid else item.name
    return local.replace("::", "."), nodeid


class PersistCollection:
    """Parametrizes every test requesting `persist`; validates its marker at collection."""

    def __init__(self, settings: PersistSettings, archive: ArchiveSettings | None = None
                 ) -> None:
        self.settings = settings
        self.archive = archive

    def _names(self, node: Any, value: Any, keyword: str) -> list[str]:
        if value is None:
            return []
        try:
            return self.settings.registry.parse([value] if isinstance(value, str) else value)
        except UnknownFormatError as exc:
            pytest.fail(f"{node.nodeid}: @pytest.mark.persist({keyword}=...): {exc}",
                        pytrace=False)

    def formats_for(self, node: Any, opts: dict[str, Any]) -> tuple[list[str], str]:
        """The formats a test runs (command line narrowed by its marker), and why if none."""
        selected = self.settings.formats
        chosen = list(selected)
        if opts.get("formats") is not None:
            wanted = set(self._names(node, opts["formats"], "formats"))
            chosen = [f for f in chosen if f in wanted]
        excluded = set(self._names(node, opts.get("exclude"), "exclude"))
        chosen = [f for f in chosen if f not in excluded]
        why = "" if chosen else (f"no persist format left: the command line selects "
                                 f"{','.join(selected)} and the marker narrows it to none")
        return chosen, why

    def params_for(self, node: Any) -> tuple[list[PersistParam], str]:
        """The (format, loader) items of a test: command line narrowed by its marker."""
        opts = marker_options(node)
        problem = self.settings.convert_problem(opts.get("convert"))
        if problem:
            pytest.fail(f"{node.nodeid}: @pytest.mark.persist(convert={opts['convert']!r}): "
                        f"{problem}", pytrace=False)
        chosen, why = self.formats_for(node, opts)
        loaders = list(self.settings.loaders)
        if opts.get("loaders") is not None:
            try:
                wanted = parse_loaders([opts["loaders"]] if isinstance(opts["loaders"], str)
                                       else opts["loaders"], "@pytest.mark.persist(loaders=...)",
                                       error=ValueError, runtimes=list(self.settings.runtimes))
            except ValueError as exc:
                pytest.fail(f"{node.nodeid}: {exc}", pytrace=False)
            loaders = [n for n in loaders if n in wanted]
        registry = self.settings.registry
        params = [PersistParam(f, loader) for f in chosen for loader in loaders
                  if applies(loader, registry.get(f))]
        if chosen and not params:
            why = (f"no persist item left: loaders {','.join(loaders) or '(none)'} do not apply "
                   f"to formats {','.join(chosen)}")
        if self.archive is not None:  # archived artifacts of the chosen formats
            from .archive.collect import archived_params

            params += [PersistParam(f, archive=label)
                       for label, f in archived_params(self.archive, node.nodeid, chosen)]
        return params, why

    def expected_failures(self, node: Any) -> dict[str, str]:
        """The marker's ``xfail`` map, its keys checked against the formats and loaders."""
        value = marker_options(node).get("xfail") or {}
        loaders = [*LOADERS, *self.settings.runtimes]
        unknown = unknown_keys(value, self.settings.registry.names(), loaders)
        if unknown:
            pytest.fail(f"{node.nodeid}: @pytest.mark.persist(xfail=...): {', '.join(unknown)} "
                        f"name no format and no format-loader item (formats: "
                        f"{', '.join(self.settings.registry.names())}; loaders: "
                        f"{', '.join(loaders)})", pytrace=False)
        return dict(value)

    def pytest_collection_modifyitems(self, items: list[pytest.Item],
                                      config: pytest.Config) -> None:
        """Mark the items a test's ``xfail`` map expects to fail (strict xfail); start a warm
        interpreter when subprocess-loader items will run (loaders.warm).

        Per item, not per function: the map may come from a `pytest.param`'s marks.
        """
        if self.archive is not None:
            from .archive.collect import deselect_unarchived

            deselect_unarchived(self.archive, items, config)
        children: set[str] = set()  # the loaders whose items run in a child process
        for item in items:
            param = getattr(getattr(item, "callspec", None), "params", {}).get("persist")
            if not isinstance(param, PersistParam):
                continue
            if param.loader == SUBPROCESS or param.loader in self.settings.runtimes:
                children.add(param.loader)
            try:
                expected = self.expected_failures(item)
            except pytest.fail.Exception as exc:  # a hook cannot fail one item: its setup does
                item.stash[MARKER_ERROR] = str(exc)
                continue
            for mark in xfail_marks(expected, param.format, param.loader):
                item.add_marker(mark)
        if children and not config.option.collectonly:  # TensorFlow imports overlap the first items
            prestart_subprocess([self.settings.runtimes[label] for label in sorted(children)
                                 if label in self.settings.runtimes], SUBPROCESS in children)

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        error = item.stash.get(MARKER_ERROR, None)
        if error is not None:
            pytest.fail(error, pytrace=False)

    @pytest.hookimpl(trylast=True)
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "persist" not in metafunc.fixturenames:
            return
        params, why = self.params_for(metafunc.definition)
        if params:
            metafunc.parametrize("persist", params, indirect=True, ids=[p.id for p in params])
        else:
            metafunc.parametrize(
                "persist", [pytest.param(None, marks=pytest.mark.skip(reason=why))],
                indirect=True, ids=[NO_FORMAT],
            )
