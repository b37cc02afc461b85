"""The golden-ownership plugin: which goldens no test owns, and removing them safely.

Ownership comes from every test *collected*, before any filtering (``-k``, ``-m``, a conftest
dropping items, a marker narrowing a test to ``[no-format]``): a golden is unused only if no
collected test of its module has its recorded owner id. A sidecar that cannot be read is
reported by name and never deleted. Removal deletes only entries directly inside the golden
directory named as the plugin names them (the sidecar, its content-addressed arrays).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from .collection import golden_identity
from .golden_paths import (
    SIDECAR_SUFFIX,
    GoldenError,
    arrays_stem,
    delete_inside,
    golden_dir_for,
    goldens_in,
    is_arrays_name,
    read_sidecar,
    remove_run_markers,
    stem_of,
    stray_arrays,
)
from .settings import PersistSettings


class GoldenOwnership:
    """Collects golden owners, finds unused goldens, removes them on request (see module)."""

    def __init__(self, settings: PersistSettings) -> None:
        self.settings = settings
        self.owners: dict[str, set[str]] = defaultdict(set)  # module path -> owner ids
        self.unused: list[str] = []
        self.stray: list[str] = []
        self.unreadable: dict[str, str] = {}  # sidecar -> why
        self.removed: list[str] = []

    def golden_dir(self, module_path: Path) -> Path:
        return golden_dir_for(module_path, rootdir=self.settings.rootpath,
                              golden_root=self.settings.golden_root)

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        # Called for every item as collected, before any plugin filters the list.
        owners = self.owners[str(item.path)]
        if "persist" in getattr(item, "fixturenames", ()):
            owners.add(golden_identity(item)[1])

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["modelpersist_run"] = self.settings.run_id  # xdist: one run id

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Find goldens whose test no longer exists, in fully collected modules only."""
        config = session.config
        if session.testsfailed or any("::" in a for a in config.args) or getattr(
                config.option, "lf", False) or getattr(config.option, "failedfirst", False):
            return
        for module in sorted(self.owners):
            directory = self.golden_dir(Path(module))
            for sidecar in goldens_in(directory):
                try:
                    owner = read_sidecar(sidecar).get("test")
                except GoldenError as exc:
                    self.unreadable[str(sidecar)] = str(exc)
                    continue
                if not isinstance(owner, str):
                    self.unreadable[str(sidecar)] = f"golden {sidecar}: names no owner test"
                elif owner not in self.owners[module]:
                    self.unused.append(str(sidecar))
            self.stray.extend(str(p) for p in stray_arrays(directory))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: the controller reports and removes
            workeroutput["modelpersist_goldens"] = {
                "unused": self.unused, "stray": self.stray, "unreadable": self.unreadable}
            return
        if self.settings.update_golden:
            remove_run_markers(self.settings.run_id)
            # a test's own --update-golden may have repaired its sidecar since collection
            self.unreadable = {p: why for p, why in self.unreadable.items()
                               if not _owner_readable(Path(p))}
        if self.settings.remove_unused:
            self.remove_unused()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        found = getattr(node, "workeroutput", {}).get("modelpersist_goldens", {})
        self.unused = sorted(set(self.unused) | set(found.get("unused", [])))
        self.stray = sorted(set(self.stray) | set(found.get("stray", [])))
        self.unreadable.update(found.get("unreadable", {}))

    def remove_unused(self) -> None:
        """Delete unused goldens (sidecar + its own arrays) and stray files, safely."""
        for path in sorted(set(self.unused)):
            sidecar = Path(path)
            if not sidecar.name.endswith(SIDECAR_SUFFIX):
                continue
            try:
                arrays = read_sidecar(sidecar).get("arrays")
            except GoldenError as exc:  # changed since collection: keep it, say why
                self.unreadable[path] = str(exc)
                continue
            directory = sidecar.parent
            if isinstance(arrays, str) and is_arrays_name(stem_of(sidecar), arrays) and (
                    arrays not in self._referenced(directory, sidecar)):
                self._delete(directory, directory / arrays)
            self._delete(directory, sidecar)
        for path in sorted(set(self.stray)):
            p = Path(path)
            if arrays_stem(p.name) is not None or (p.name.startswith(".")
                                                   and p.name.endswith(".tmp")):
                self._delete(p.parent, p)

    @staticmethod
    def _referenced(directory: Path, besides: Path) -> set[str]:
        names = set()
        for other in goldens_in(directory):
            if other != besides:
                try:
                    names.add(str(read_sidecar(other).get("arrays")))
                except GoldenError:
                    pass
        return names

    def _delete(self, directory: Path, path: Path) -> None:
        if delete_inside(directory, path):
            self.removed.append(str(path))


def _owner_readable(sidecar: Path) -> bool:
    try:
        return isinstance(read_sidecar(sidecar).get("test"), str)
    except GoldenError:
        return False
