"""The summary plugin: outcomes per format, goldens recorded/updated/unused, cache reuse.

Under xdist, workers send their counts in ``workeroutput`` and the controller prints one
summary (like syrupy: the session collects, the report formats).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from .fixture import FORMAT_PROPERTY, GOLDEN_PROPERTY, PersistFactory
from .ownership import GoldenOwnership
from .report import cache_line, golden_lines, outcome_table
from .settings import PersistSettings


class PersistSummary:
    """Counts what happened and prints the ``modelpersist summary`` section."""

    def __init__(self, settings: PersistSettings, ownership: GoldenOwnership,
                 factory: PersistFactory) -> None:
        self.settings, self.ownership, self.factory = settings, ownership, factory
        self.outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.golden_events: dict[str, set[str]] = defaultdict(set)
        self.cache_counts: dict[str, dict[str, int]] = {"saves": {}, "hits": {}}
        self.cache_notes: list[str] = []  # per-worker caches and why, replaced shared entries

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == GOLDEN_PROPERTY:
                event, path = str(value).split("\t", 1)
                self.golden_events[event].add(path)
        found = dict(report.user_properties).get(FORMAT_PROPERTY)
        if found is None:
            return
        counts = self.outcomes[str(found)]
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            # pytest reports an expected failure as skipped, and an unexpected (non-strict)
            # pass as passed, each with `wasxfail`: they get columns of their own
            if hasattr(report, "wasxfail") and report.outcome in ("skipped", "passed"):
                counts["xfailed" if report.outcome == "skipped" else "xpassed"] += 1
            else:
                counts[report.outcome] += 1
        elif report.when == "teardown" and report.outcome == "failed":
            counts["failed"] += 1

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._merge_cache_counts(self.factory.cache_summary())
        self.cache_notes.extend(self.factory.cache_notes())
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: the controller reports
            workeroutput["modelpersist_cache"] = {**self.cache_counts, "notes": self.cache_notes}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        found = getattr(node, "workeroutput", {}).get("modelpersist_cache", {})
        self._merge_cache_counts(found)
        self.cache_notes.extend(found.get("notes", []))

    def _merge_cache_counts(self, counts: dict[str, dict[str, int]]) -> None:
        for kind in ("saves", "hits"):
            for fmt, n in counts.get(kind, {}).items():
                self.cache_counts[kind][fmt] = self.cache_counts[kind].get(fmt, 0) + n

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        own = self.ownership
        unused = sorted(set(own.unused) | set(own.stray))
        if not (self.outcomes or self.golden_events or unused or own.unreadable):
            return
        terminalreporter.section("modelpersist summary")
        names = self.settings.registry.names()
        # Ids are format, format-loader or format@label: group them by their format.
        order = sorted(self.outcomes, key=lambda k: (
            names.index(_format_of(k)) if _format_of(k) in names else len(names), k))
        if order:
            for line in outcome_table({f: self.outcomes[f] for f in order}):
                terminalreporter.write_line(line)
        if self.cache_counts["saves"]:
            terminalreporter.write_line(cache_line(**self.cache_counts))
        for note in sorted(set(self.cache_notes)):
            terminalreporter.write_line(f"artifact cache: {note}")
        for line in golden_lines(self.golden_events, unused, own.unreadable, own.removed):
            terminalreporter.write_line(line)


def _format_of(item_id: str) -> str:
    """The format of an item id (``h5``, ``h5-subprocess``, ``h5@v1.4``)."""
    return item_id.split("@")[0].split("-")[0]
