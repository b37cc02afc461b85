"""Per-session state, registered as a plugin: formats, parametrization, outcome summary."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._lazy import lazy_module
from .errors import FormatContractError, UnknownFormatError
from .loaders import INPROCESS, loaders_of, parse_loaders
from .registry import FormatRegistry

if TYPE_CHECKING:
    from . import golden as golden_files
    from .compare import Tolerance
else:  # imported when a golden or a tolerance is first needed, not at pytest start-up
    golden_files = lazy_module("pytest_modelpersist.golden")

MARKER_KEYWORDS = ("formats", "exclude", "loaders", "rtol", "atol", "exact", "golden", "unsafe",
                   "timeout")
FORMAT_PROPERTY = "modelpersist_format"
GOLDEN_PROPERTY = "modelpersist_golden"


@dataclass(frozen=True)
class PersistParam:
    """One test item's format and loader; its id is the format, or format-loader."""

    format: str
    loader: str = INPROCESS

    @property
    def id(self) -> str:
        return self.format if self.loader == INPROCESS else f"{self.format}-{self.loader}"

    def __str__(self) -> str:
        return self.id


def running_on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def base_test_name(item: Any) -> tuple[str, str]:
    """(name, nodeid) of a test item without its persist format parameter.

    The format is always the last parametrization (the plugin parametrizes last), so it is
    the id's last '-'-separated part.
    """
    name, nodeid = item.name, item.nodeid
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get("persist") if callspec is not None else None
    if param is None:
        return name, nodeid
    fmt = str(param)
    ident = callspec.id if callspec is not None else fmt
    rest = ident[: -len(fmt)].rstrip("-") if ident.endswith(fmt) else ident
    base = item.originalname + (f"[{rest}]" if rest else "")
    return base, nodeid[: len(nodeid) - len(name)] + base


class PersistSession:
    """Everything pytest-modelpersist knows for one run; hooks hand off to it."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.registry = FormatRegistry()
        self.selected: list[str] = []
        self.outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.golden_events: dict[str, set[str]] = defaultdict(set)
        self.unused: list[str] = []
        self.removed: list[str] = []
        golden_dir = config.getoption("golden_dir") or config.getini("golden_dir")
        self.golden_root = (Path(config.rootpath, golden_dir) if golden_dir else None)
        self.update_golden = bool(config.getoption("update_golden"))
        self.loaders: list[str] = []
        self._cache: Any = None
        self.cache_counts: dict[str, dict[str, int]] = {"saves": {}, "hits": {}}

    # ---- configuration ---------------------------------------------------------------

    def start(self) -> None:
        """Register formats through the historic hook and resolve --persist-formats."""
        from .formats import BuiltinFormats

        pm = self.config.pluginmanager
        if not pm.has_plugin("modelpersist-builtin-formats"):
            pm.register(BuiltinFormats(), "modelpersist-builtin-formats")
        try:
            self.config.hook.pytest_modelpersist_register_formats.call_historic(
                kwargs={"registry": self.registry}
            )
        except FormatContractError as exc:  # a plugin's format breaks the contract
            raise pytest.UsageError(str(exc)) from None
        spec = self.config.getoption("persist_formats") or self.config.getini("persist_formats")
        try:
            self.selected = self.registry.parse(spec or "all")
        except UnknownFormatError as exc:
            source = "--persist-formats" if self.config.getoption("persist_formats") else (
                "ini option persist_formats")
            raise pytest.UsageError(f"{source}: {exc}") from None
        if not self.selected:
            raise pytest.UsageError(
                f"--persist-formats selects no format; known formats: "
                f"{', '.join(self.registry.names())} (or 'all')"
            )
        spec = self.config.getoption("persist_loaders") or self.config.getini("persist_loaders")
        self.loaders = parse_loaders(spec, "--persist-loaders" if self.config.getoption(
            "persist_loaders") else "ini option persist_loaders", error=pytest.UsageError)
        if (self.update_golden and running_on_ci()
                and not self.config.getoption("allow_update_golden_on_ci")):
            raise pytest.UsageError(
                "--update-golden refused: CI is set, and goldens recorded by CI are never "
                "reviewed. Record them locally and commit them, or add "
                "--allow-update-golden-on-ci if this job really should write them."
            )

    def golden_dir(self, module_path: Path) -> Path:
        return golden_files.golden_dir_for(module_path, rootdir=self.config.rootpath,
                                           golden_root=self.golden_root)

    # ---- collection ------------------------------------------------------------------

    def marker_options(self, node: Any) -> dict[str, Any]:
        """The `persist` markers' keywords for a test, validated (bad ones fail collection).

        Markers on the function, class and module merge; the closest one wins per keyword.
        """
        merged: dict[str, Any] = {}
        for mark in node.iter_markers("persist"):  # closest first
            if mark.args:
                pytest.fail(
                    f"{node.nodeid}: @pytest.mark.persist takes keywords only "
                    f"({', '.join(MARKER_KEYWORDS)}), got positional {mark.args!r}",
                    pytrace=False,
                )
            unknown = sorted(set(mark.kwargs) - set(MARKER_KEYWORDS))
            if unknown:
                pytest.fail(
                    f"{node.nodeid}: @pytest.mark.persist got unknown keyword(s) "
                    f"{', '.join(unknown)}; allowed: {', '.join(MARKER_KEYWORDS)}",
                    pytrace=False,
                )
            for key, value in mark.kwargs.items():
                merged.setdefault(key, value)
        return merged

    def _names(self, node: Any, value: Any, keyword: str) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        try:
            return self.registry.parse(list(value))
        except UnknownFormatError as exc:
            pytest.fail(f"{node.nodeid}: @pytest.mark.persist({keyword}=...): {exc}",
                        pytrace=False)

    def params_for(self, node: Any) -> tuple[list[PersistParam], str]:
        """The (format, loader) items of a test: command line narrowed by its marker."""
        chosen, why = self.formats_for(node)
        loaders = list(self.loaders)
        opts = self.marker_options(node)
        if opts.get("loaders") is not None:
            wanted = opts["loaders"]
            try:
                wanted = parse_loaders([wanted] if isinstance(wanted, str) else wanted,
                                             "@pytest.mark.persist(loaders=...)",
                                             error=ValueError)
            except ValueError as exc:
                pytest.fail(f"{node.nodeid}: {exc}", pytrace=False)
            loaders = [n for n in loaders if n in wanted]
        params = [PersistParam(f, loader) for f in chosen for loader in loaders
                  if loader in loaders_of(self.registry.get(f))]
        if chosen and not params:
            why = (f"no persist item left: loaders {','.join(loaders) or '(none)'} do not apply "
                   f"to formats {','.join(chosen)}")
        return params, why

    def formats_for(self, node: Any) -> tuple[list[str], str]:
        """The formats a test runs (command line narrowed by its marker), and why if none."""
        opts = self.marker_options(node)
        chosen = list(self.selected)
        if opts.get("formats") is not None:
            wanted = set(self._names(node, opts["formats"], "formats"))
            chosen = [f for f in chosen if f in wanted]
        excluded = set(self._names(node, opts.get("exclude"), "exclude"))
        chosen = [f for f in chosen if f not in excluded]
        why = ""
        if not chosen:
            why = (f"no persist format left: the command line selects "
                   f"{','.join(self.selected)} and the marker narrows it to none")
        return chosen, why

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
                indirect=True, ids=["no-format"],
            )

    # ---- fixture ---------------------------------------------------------------------

    def make_persist(self, request: pytest.FixtureRequest) -> Any:
        """The `persist` fixture's value for one parametrized test item."""
        from ._tf import INSTALL_HINT, tensorflow_available
        from .api import CheckOptions, GoldenTarget, Persist
        from .formats import LazyFormat

        param = getattr(request, "param", None)
        if param is None:
            pytest.fail(
                "the persist fixture was not parametrized: request it as a test argument or "
                "through another fixture (request.getfixturevalue('persist') is too late)",
                pytrace=False,
            )
        if not tensorflow_available():
            import sys

            pytest.fail(INSTALL_HINT.format(python=sys.executable), pytrace=False)
        # Import TensorFlow now, quietly: the test is about to, and its start-up noise would
        # otherwise land in the test's captured output.
        from ._tf import import_tensorflow

        import_tensorflow()
        request.node.user_properties.append((FORMAT_PROPERTY, param.id))
        opts = self.marker_options(request.node)
        options = CheckOptions(
            rtol=opts.get("rtol"), atol=opts.get("atol"), exact=bool(opts.get("exact", False)),
            table=self.tolerance_table(), safe_mode=not opts.get("unsafe", False),
            golden=bool(opts.get("golden", True)),
            timeout=float(opts.get("timeout") or self.config.getoption("persist_timeout")
                          or self.config.getini("persist_timeout") or 300),
            subprocess_path=tuple(str(Path(self.config.rootpath, p)) for p in
                                  self.config.getini("persist_subprocess_path")),
            subprocess_imports=tuple(self.config.getini("persist_subprocess_imports")),
        )
        base, base_id = base_test_name(request.node)
        golden = GoldenTarget(self.golden_dir(request.node.path), base, base_id,
                              request.node.nodeid, update=self.update_golden)
        request.addfinalizer(lambda: request.node.user_properties.extend(
            (GOLDEN_PROPERTY, f"{event}\t{path}") for event, path in golden.events))
        fmt = self.registry.get(param.format)
        if isinstance(fmt, LazyFormat):  # the subprocess loader re-creates it by its class
            fmt = fmt.inner
        return Persist(fmt,
                       tmp_path=request.getfixturevalue("tmp_path"), options=options,
                       nodeid=request.node.nodeid, golden=golden, loader=param.loader,
                       cache=self.artifact_cache(request), node=request.node)

    def artifact_cache(self, request: pytest.FixtureRequest) -> Any:
        """The session's artifact cache (created on first use, under pytest's tmp dir)."""
        if self._cache is None:
            from .cache import ArtifactCache

            root = request.getfixturevalue("tmp_path_factory").mktemp("persist-cache")
            self._cache = ArtifactCache(root, enabled=not self.config.getoption(
                "persist_no_cache"))
        return self._cache

    def tolerance_table(self) -> dict[str, Tolerance]:
        """`persist_tolerances` ini lines: ``float32 = 1e-4, 1e-5`` (dtype = rtol, atol)."""
        from .compare import Tolerance

        table: dict[str, Tolerance] = {}
        for line in self.config.getini("persist_tolerances") or []:
            if not line.strip():
                continue
            try:
                dtype, values = (s.strip() for s in line.split("=", 1))
                rtol, atol = (float(v) for v in values.split(","))
            except ValueError:
                raise pytest.UsageError(
                    f"ini persist_tolerances: cannot read {line!r}; "
                    "write one 'dtype = rtol, atol' per line"
                ) from None
            table[dtype] = Tolerance(rtol, atol)
        return table

    # ---- reporting -------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == GOLDEN_PROPERTY:
                event, path = str(value).split("\t", 1)
                self.golden_events[event].add(path)
        found = dict(report.user_properties).get(FORMAT_PROPERTY)
        if found is None:
            return
        fmt = str(found)
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.outcomes[fmt][report.outcome] += 1
        elif report.when == "teardown" and report.outcome == "failed":
            self.outcomes[fmt]["failed"] += 1

    # ---- unused goldens --------------------------------------------------------------

    def pytest_deselected(self, items: list[Any]) -> None:
        self._deselected_modules.update(str(i.path) for i in items)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> None:
        self._deselected_modules: set[str] = set()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Find goldens whose test no longer exists, in fully collected modules only."""
        if session.testsfailed or any("::" in a for a in self.config.args) or getattr(
                self.config.option, "lf", False) or getattr(self.config.option, "failedfirst",
                                                              False):
            return
        owners: dict[str, set[str]] = defaultdict(set)
        for item in session.items:
            if "persist" in getattr(item, "fixturenames", ()):
                owners[str(item.path)].add(base_test_name(item)[1])
        modules = {str(i.path) for i in session.items} - self._deselected_modules
        for module in sorted(modules):
            directory = self.golden_dir(Path(module))
            for sidecar in golden_files.goldens_in(directory):
                if golden_files.owner_of(sidecar) not in owners.get(module, set()):
                    self.unused.append(str(sidecar))
            self.unused.extend(str(p) for p in golden_files.stray_arrays(directory))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        if self._cache is not None:
            self._merge_cache_counts(self._cache.summary())
        if workeroutput is not None:  # an xdist worker: the controller reports
            workeroutput["modelpersist_unused"] = list(self.unused)
            workeroutput["modelpersist_cache"] = self.cache_counts
            return
        if self.config.getoption("remove_unused_goldens"):
            self.remove_unused()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        unused = getattr(node, "workeroutput", {}).get("modelpersist_unused", [])
        self.unused = sorted(set(self.unused) | set(unused))
        self._merge_cache_counts(getattr(node, "workeroutput", {}).get("modelpersist_cache", {}))

    def _merge_cache_counts(self, counts: dict[str, dict[str, int]]) -> None:
        for kind in ("saves", "hits"):
            for fmt, n in counts.get(kind, {}).items():
                self.cache_counts[kind][fmt] = self.cache_counts[kind].get(fmt, 0) + n

    def remove_unused(self) -> None:
        import json

        for path in sorted(set(self.unused)):
            p = Path(path)
            targets = [p]
            if p.name.endswith(golden_files.SIDECAR_SUFFIX):
                try:
                    targets.append(p.parent / json.loads(p.read_text())["arrays"])
                except (OSError, ValueError, KeyError, TypeError):
                    pass
            for t in targets:
                try:
                    t.unlink()
                    self.removed.append(str(t))
                except OSError:
                    pass

    # ---- summary ---------------------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not (self.outcomes or self.golden_events or self.unused):
            return
        from .report import outcome_table

        terminalreporter.section("modelpersist summary")
        order = sorted(self.outcomes, key=lambda k: (
            self.registry.names().index(k.split("-")[0]) if k.split("-")[0] in self.registry
            else len(self.registry), k))
        if order:
            for line in outcome_table({f: self.outcomes[f] for f in order}):
                terminalreporter.write_line(line)
        saves, hits = self.cache_counts["saves"], self.cache_counts["hits"]
        if saves:
            terminalreporter.write_line(
                f"artifacts: {sum(saves.values())} saved, {sum(hits.values())} reused from the "
                "session cache (" + ", ".join(f"{f} {saves[f]}+{hits.get(f, 0)}"
                                              for f in sorted(saves)) + ")")
        recorded = sorted(self.golden_events.get("recorded", ()))
        updated = sorted(self.golden_events.get("updated", ()))
        unused = sorted(set(self.unused))
        terminalreporter.write_line(
            f"goldens: {len(recorded)} recorded, {len(updated)} updated, {len(unused)} unused"
            + (f", {len(self.removed)} files removed" if self.removed else "")
        )
        for label, paths in (("recorded", recorded), ("updated", updated)):
            for path in paths:
                terminalreporter.write_line(f"  {label}: {path}")
        if unused and not self.removed:
            terminalreporter.write_line("unused goldens (their tests no longer exist; remove "
                                        "them with --remove-unused-goldens):")
            for path in unused:
                terminalreporter.write_line(f"  {path}")
