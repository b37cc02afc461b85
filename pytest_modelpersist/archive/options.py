"""The archive's options: parsed once in ``pytest_configure``, kept in ``config.stash``.

The controller (or a run without xdist) also acts on them at start: it refuses to record into
an existing label without ``--archive-overwrite``, writes the label's manifest, and retires a
label. Bad values are ``pytest.UsageError``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .store import ArchiveError, ArchiveStore, label_problem

ARCHIVE_KEY = pytest.StashKey["ArchiveSettings | None"]()


def add_options(parser: pytest.Parser) -> None:
    """The archive's command-line options and ini keys."""
    group = parser.getgroup("modelpersist")
    group.addoption("--persist-archive", dest="persist_archive", default=None, metavar="DIR",
                    help="archive of saved artifacts (relative to rootdir): its labels run as "
                         "[<format>@<LABEL>] items. Default: the persist_archive ini option")
    group.addoption("--archive-record", dest="archive_record", default=None, metavar="LABEL",
                    help="store every artifact persist.check saves in the archive under LABEL")
    group.addoption("--archive-overwrite", dest="archive_overwrite", action="store_true",
                    help="let --archive-record replace entries of an existing label")
    group.addoption("--archive-retire", dest="archive_retire", default=None, metavar="LABEL",
                    help="stop running LABEL's items (give the reason with --archive-reason)")
    group.addoption("--archive-reason", dest="archive_reason", default=None, metavar="TEXT",
                    help="why --archive-retire retires its label (kept in its label.json)")
    parser.addini("persist_archive", "default for --persist-archive (relative to rootdir)",
                  default="")
    parser.addini("persist_archive_max_mb", "size budget of one archive label in MB "
                  "(default 50): a record beyond it fails with the sizes", default="50")


@dataclass
class ArchiveSettings:
    """Where the archive is, which label this run records, and its budget."""

    store: ArchiveStore
    record: str | None
    overwrite: bool
    max_bytes: int
    labels: tuple[str, ...] = ()  # what replay_labels returns, read once at start

    @classmethod
    def from_config(cls, config: pytest.Config) -> ArchiveSettings | None:
        """The run's archive settings, or None when no archive is configured."""
        where = config.getoption("persist_archive") or config.getini("persist_archive")
        record = config.getoption("archive_record")
        retire = config.getoption("archive_retire")
        if not where:
            if record or retire:
                raise pytest.UsageError("--archive-record/--archive-retire need an archive: "
                                        "--persist-archive=DIR or the persist_archive ini option")
            return None
        try:
            max_mb = float(config.getini("persist_archive_max_mb"))
        except ValueError:
            raise pytest.UsageError(f"persist_archive_max_mb = "
                                    f"{config.getini('persist_archive_max_mb')!r}: expected a "
                                    "number of megabytes") from None
        for label in (record, retire):
            problem = label and label_problem(label)
            if problem:
                raise pytest.UsageError(problem)
        settings = cls(ArchiveStore(Path(config.rootpath, where)), record,
                       bool(config.getoption("archive_overwrite")), round(max_mb * 1024 * 1024))
        if getattr(config, "workerinput", None) is None:  # the controller acts once
            settings._start(retire, config.getoption("archive_reason"))
        try:
            settings.labels = settings._replay_labels()
        except ArchiveError as exc:
            raise pytest.UsageError(str(exc)) from None
        return settings

    def _start(self, retire: str | None, reason: str | None) -> None:
        try:
            if retire:
                self._retire(retire, reason)
            if self.record:
                self._open_label(self.record)
        except ArchiveError as exc:
            raise pytest.UsageError(str(exc)) from None

    def _open_label(self, label: str) -> None:
        from .item import versions

        existing = self.store.label_doc(label)
        if existing is not None and not self.overwrite:
            raise pytest.UsageError(
                f"archive label {label!r} exists ({self.store.root / label}, recorded "
                f"{existing.get('recorded', '?')} with {describe_versions(existing)}): "
                "recording never changes a label; choose a new label, or pass "
                "--archive-overwrite to replace the entries this run records")
        doc = {"label": label, "recorded": _now(), "versions": versions(), "retired": None}
        self.store.write_label(label, doc)

    def _retire(self, label: str, reason: str | None) -> None:
        doc = self.store.label_doc(label)
        if doc is None:
            raise pytest.UsageError(f"--archive-retire={label}: no such label in "
                                    f"{self.store.root} (labels: "
                                    f"{', '.join(self.store.labels()) or 'none'})")
        if not reason:
            raise pytest.UsageError(f"--archive-retire={label} needs --archive-reason=TEXT: "
                                    "why the break is intended (kept in the label's manifest)")
        doc["retired"] = {"reason": reason, "when": _now()}
        self.store.write_label(label, doc)

    def replay_labels(self) -> list[str]:
        """The labels whose entries run as items: not retired, not the one being recorded."""
        return list(self.labels)

    def _replay_labels(self) -> tuple[str, ...]:
        out = []
        for label in self.store.labels():
            doc = self.store.label_doc(label) or {}
            if label != self.record and not doc.get("retired"):
                out.append(label)
        return tuple(out)


def describe_versions(doc: dict[str, Any]) -> str:
    """``TF 2.15.1, Keras 2.15.0, numpy 1.26.4, Python 3.11.9, plugin 0.1.0``."""
    v = doc.get("versions") or {}
    names = (("tensorflow", "TF"), ("keras", "Keras"), ("tf_keras", "tf_keras"),
             ("numpy", "numpy"), ("python", "Python"), ("plugin", "plugin"))
    return ", ".join(f"{label} {v[k]}" for k, label in names if v.get(k)) or "unknown versions"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
