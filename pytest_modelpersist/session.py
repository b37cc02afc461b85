"""Per-session state, registered as a plugin: formats, parametrization, outcome summary."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest

from .compare import Tolerance
from .errors import UnknownFormatError
from .registry import FormatRegistry

MARKER_KEYWORDS = ("formats", "exclude", "rtol", "atol", "exact", "unsafe")
FORMAT_PROPERTY = "modelpersist_format"


class PersistSession:
    """Everything pytest-modelpersist knows for one run; hooks hand off to it."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.registry = FormatRegistry()
        self.selected: list[str] = []
        self.outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

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
        from .api import CheckOptions, Persist

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
        request.node.user_properties.append((FORMAT_PROPERTY, name))
        opts = self.marker_options(request.node)
        options = CheckOptions(
            rtol=opts.get("rtol"), atol=opts.get("atol"), exact=bool(opts.get("exact", False)),
            table=self.tolerance_table(), safe_mode=not opts.get("unsafe", False),
        )
        return Persist(self.registry.get(name), tmp_path=request.getfixturevalue("tmp_path"),
                       options=options, nodeid=request.node.nodeid)

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
        fmt = dict(report.user_properties).get(FORMAT_PROPERTY)
        if fmt is None:
            return
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.outcomes[fmt][report.outcome] += 1
        elif report.when == "teardown" and report.outcome == "failed":
            self.outcomes[fmt]["failed"] += 1

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.outcomes:
            return
        from .report import outcome_table

        order = [f for f in self.registry.names() if f in self.outcomes]
        terminalreporter.section("modelpersist summary")
        for line in outcome_table({f: self.outcomes[f] for f in order}):
            terminalreporter.write_line(line)


def format_names(values: Sequence[str]) -> str:
    return ", ".join(values)
