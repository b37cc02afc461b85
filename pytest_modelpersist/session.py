"""Per-session state, registered as a plugin: formats, parametrization, outcome summary."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from . import golden as golden_files
from .compare import Tolerance
from .errors import UnknownFormatError
from .registry import FormatRegistry

MARKER_KEYWORDS = ("formats", "exclude", "rtol", "atol", "exact", "golden", "unsafe")
FORMAT_PROPERTY = "modelpersist_format"
GOLDEN_PROPERTY = "modelpersist_golden"


def running_on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def base_test_name(item: Any) -> tuple[str, str]:
    """(name, nodeid) of a test item without its persist format parameter.

    The format is always the last parametrization (the plugin parametrizes last), so it is
    the id's last '-'-separated part.
    """
    name, nodeid = item.name, item.nodeid
    callspec = getattr(item, "callspec", None)
    fmt = callspec.params.get("persist") if callspec is not None else None
    if fmt is None:
        return name, nodeid
    ident = callspec.id
    rest = ident[: -len(fmt)].rstrip("-") if ident.endswith(str(fmt)) else ident
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

    # ---- configuration ---------------------------------------------------------------

    def start(self) -> None:
        """Register formats through the historic hook and resolve --persist-formats."""
        from .formats import BuiltinFormats

        pm = self.config.pluginmanager
        if not pm.has_plugin("modelpersist-builtin-formats"):
            pm.register(BuiltinFormats(), "modelpersist-builtin-formats")
        self.config.hook.pytest_modelpersist_register_formats.call_historic(
            kwargs={"registry": self.registry}
        )
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
        """The `persist` marker's keywords for a test, validated (bad ones fail collection)."""
        mark = node.get_closest_marker("persist")
        if mark is None:
            return {}
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
        return dict(mark.kwargs)

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
        chosen, why = self.formats_for(metafunc.definition)
        if chosen:
            metafunc.parametrize("persist", chosen, indirect=True, ids=chosen)
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

        name = getattr(request, "param", None)
        if name is None:
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
        request.node.user_properties.append((FORMAT_PROPERTY, name))
        opts = self.marker_options(request.node)
        options = CheckOptions(
            rtol=opts.get("rtol"), atol=opts.get("atol"), exact=bool(opts.get("exact", False)),
            table=self.tolerance_table(), safe_mode=not opts.get("unsafe", False),
            golden=bool(opts.get("golden", True)),
        )
        base, base_id = base_test_name(request.node)
        golden = GoldenTarget(self.golden_dir(request.node.path), base, base_id,
                              request.node.nodeid, update=self.update_golden)
        request.addfinalizer(lambda: request.node.user_properties.extend(
            (GOLDEN_PROPERTY, f"{event}\t{path}") for event, path in golden.events))
        return Persist(self.registry.get(name), tmp_path=request.getfixturevalue("tmp_path"),
                       options=options, nodeid=request.node.nodeid, golden=golden)

    def tolerance_table(self) -> dict[str, Tolerance]:
        """`persist_tolerances` ini lines: ``float32 = 1e-4, 1e-5`` (dtype = rtol, atol)."""
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
                event, path = value.split("\t", 1)
                self.golden_events[event].add(path)
        fmt = dict(report.user_properties).get(FORMAT_PROPERTY)
        if fmt is None:
            return
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
        if workeroutput is not None:  # an xdist worker: the controller reports
            workeroutput["modelpersist_unused"] = list(self.unused)
            return
        if self.config.getoption("remove_unused_goldens"):
            self.remove_unused()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        unused = getattr(node, "workeroutput", {}).get("modelpersist_unused", [])
        self.unused = sorted(set(self.unused) | set(unused))

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
        from .report import outcome_table

        if not (self.outcomes or self.golden_events or self.unused):
            return
        terminalreporter.section("modelpersist summary")
        order = [f for f in self.registry.names() if f in self.outcomes]
        if order:
            for line in outcome_table({f: self.outcomes[f] for f in order}):
                terminalreporter.write_line(line)
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
