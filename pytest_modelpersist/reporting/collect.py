"""The report plugin: one row per persist item, built from its TestReports, written at the end.

Registered in ``pytest_configure``. Rows are built in ``pytest_runtest_logreport``, which under
xdist runs on the controller for every worker's reports (their ``user_properties`` travel with
them), so the controller holds every row without any worker output channel.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import BULKY, DETAILS, OUTPUTS, PREFIX, record

WRITERS = (".html", ".md", ".json")


def add_options(parser: pytest.Parser) -> None:
    """--persist-report and its ini default."""
    parser.getgroup("modelpersist").addoption(
        "--persist-report", dest="persist_report", action="append", default=[], metavar="PATH",
        help="write the persistence matrix to PATH: .html (self-contained page), .md (for "
             "$GITHUB_STEP_SUMMARY or a PR comment) or .json (rows, documented schema); "
             "repeat the option or give a comma list",
    )
    parser.addini("persist_report", "default for --persist-report (paths, comma separated)",
                  default="")


def report_paths(config: pytest.Config) -> list[Path]:
    """The report files asked for (option, else ini), relative to the invocation directory."""
    given = config.getoption("persist_report") or [config.getini("persist_report") or ""]
    paths = [p.strip() for spec in given for p in str(spec).split(",") if p.strip()]
    bad = [p for p in paths if Path(p).suffix.lower() not in WRITERS]
    if bad:
        raise pytest.UsageError(
            f"--persist-report: cannot tell the kind of report from {', '.join(bad)}; "
            f"end each path with one of {', '.join(WRITERS)}")
    return [Path(config.invocation_params.dir, p) for p in paths]


@dataclass
class Row:
    """One test item of the matrix: a test x a format x a loader. See report.schema.json."""

    nodeid: str
    test: str
    format: str
    loader: str
    model_kind: str = ""
    label: str = ""
    runtime: str = ""
    outcome: str = "pass"
    reason: str = ""
    message: str = ""
    artifact_bytes: int | None = None
    save_seconds: float | None = None
    restore_seconds: float | None = None
    run_seconds: float | None = None
    duration_seconds: float = 0.0
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    details: str = ""
    index: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def outcome_of(report: pytest.TestReport, previous: str | None) -> str | None:
    """The row outcome after this phase's report, or None when the phase changes nothing."""
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.passed:
            return "xpass" if xfail else "pass"
        if report.skipped:
            return "xfail" if xfail else "skip"
        return "fail"
    if report.failed:  # setup or teardown
        return "error" if previous in (None, "pass") else previous
    if report.skipped:
        return "xfail" if xfail else "skip"
    return None


def reason_of(report: pytest.TestReport) -> str:
    """The failure text or skip/xfail reason of a report, cleaned (full, several lines)."""
    from ..messages import clean_message

    if hasattr(report, "wasxfail") and report.skipped:
        return str(report.wasxfail)
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple):
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(longrepr, "chain", None) is not None:
        # A traceback (a plugin bug, an assertion): the crash line names it.
        return clean_message(str(crash.message)).removeprefix("Failed: ")
    return clean_message(report.longreprtext).removeprefix("Failed: ")


class ReportPlugin:
    """Builds the rows, writes the asked-for reports, groups identical failure causes."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.paths = report_paths(config)
        self.rows: dict[str, Row] = {}
        self.written: list[Path] = []

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        from ..collection import golden_identity
        from ..settings import SETTINGS_KEY

        runtimes = self.config.stash[SETTINGS_KEY].runtimes
        for index, item in enumerate(items):
            callspec = getattr(item, "callspec", None)
            param = callspec.params.get("persist") if callspec is not None else None
            if param is None:
                continue
            record(item, "format", param.format)
            record(item, "loader", param.loader)
            if param.loader in runtimes:  # which interpreter ran it
                record(item, "runtime", f"{param.loader} = {runtimes[param.loader].python}")
            record(item, "test", golden_identity(item)[1])
            record(item, "index", index)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if hasattr(self.config, "workerinput"):
            return  # an xdist worker sends the report, whole, to the controller, which builds
        props: dict[str, list[Any]] = defaultdict(list)
        for key, value in report.user_properties:
            if isinstance(key, str) and key.startswith(PREFIX):
                props[key[len(PREFIX):]].append(value)
        if "format" not in props:
            return
        # The bulky entries are for this report only; JUnit XML keeps the key figures.
        report.user_properties = [(k, v) for k, v in report.user_properties
                                  if k not in BULKY and k != PREFIX + "index"]
        row = self.rows.get(report.nodeid) or Row(
            nodeid=report.nodeid, test=str(props.get("test", [report.nodeid])[0]),
            format=str(props["format"][0]), loader=str(props.get("loader", [""])[0]),
            index=int(props.get("index", [0])[0]))
        self.rows[report.nodeid] = row
        self._fill(row, props)
        row.duration_seconds = round(row.duration_seconds + report.duration, 6)
        outcome = outcome_of(report, row.outcome if report.when != "setup" else None)
        if outcome is not None:
            row.outcome = outcome
            if outcome != "pass":
                message = reason_of(report)
                row.message = message[:8000]
                row.reason = next((ln for ln in message.splitlines() if ln.strip()), "")[:500]

    @staticmethod
    def _fill(row: Row, props: dict[str, list[Any]]) -> None:
        """The figures the persist code recorded (each phase's report carries all so far)."""
        def last(key: str) -> Any:
            return props[key][-1] if props.get(key) else None

        row.model_kind = str(last("model_kind") or row.model_kind)
        row.runtime = str(last("runtime") or row.runtime)
        row.artifact_bytes = last("artifact_bytes")
        for step in ("save", "restore", "run"):
            value = last(f"{step}_seconds")
            setattr(row, f"{step}_seconds", None if value is None else round(value, 6))
        row.max_abs_diff = last("max_abs_diff")
        row.max_rel_diff = last("max_rel_diff")
        row.outputs = [o for doc in props.get(OUTPUTS, []) for o in json.loads(doc)]
        row.details = "\n\n".join(str(d) for d in props.get(DETAILS, []))

    def sorted_rows(self) -> list[Row]:
        return sorted(self.rows.values(), key=lambda r: (r.index, r.nodeid))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput") or not self.paths:
            return  # an xdist worker: the controller writes the reports
        from .writers import write_report

        rows = self.sorted_rows()
        for path in self.paths:
            write_report(path, rows)
            self.written.append(path)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from ..messages import cause_of

        causes: dict[str, list[str]] = defaultdict(list)
        for row in self.sorted_rows():
            if row.outcome in ("fail", "error"):
                causes[cause_of(row.message)].append(row.nodeid)
        repeated = {c: ids for c, ids in causes.items() if len(ids) > 1 and c}
        if repeated:
            terminalreporter.section("modelpersist failures by cause")
            for cause, ids in sorted(repeated.items(), key=lambda kv: -len(kv[1])):
                terminalreporter.write_line(
                    f"{len(ids)} items failed with the same cause: {cause}")
                shown = ", ".join(i.rsplit("::", 1)[-1] for i in ids[:6])
                terminalreporter.write_line(f"  {shown}" + (", ..." if len(ids) > 6 else ""))
        for path in self.written:
            terminalreporter.write_line(f"modelpersist report: {path}")
