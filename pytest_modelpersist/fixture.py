"""The `persist` fixture's factory: one Persist per parametrized test item.

It joins what the other pieces decided: the item's format and loader (collection), its checked
marker and the run's options (settings), its golden identity, and the session artifact cache.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import pytest

from .collection import PersistParam, golden_identity
from .golden_paths import golden_dir_for
from .settings import PersistSettings, marker_options

if TYPE_CHECKING:
    from .cache import ArtifactCache
    from .persist import Persist

FORMAT_PROPERTY = "modelpersist_format"
GOLDEN_PROPERTY = "modelpersist_golden"


class PersistFactory:
    """Builds the `persist` fixture's value; owns the session's artifact cache."""

    def __init__(self, settings: PersistSettings) -> None:
        self.settings = settings
        self._cache: ArtifactCache | None = None

    def make(self, request: pytest.FixtureRequest) -> Persist:
        """The `persist` fixture's value for one parametrized test item."""
        from ._tf import INSTALL_HINT, tensorflow_available
        from .formats import LazyFormat
        from .golden_check import GoldenTarget
        from .persist import Persist

        param = getattr(request, "param", None)
        if param is None:
            pytest.fail("the persist fixture was not parametrized: request it as a test argument "
                        "or through another fixture (request.getfixturevalue('persist') is too "
                        "late)", pytrace=False)
        if not tensorflow_available():
            pytest.fail(INSTALL_HINT.format(python=sys.executable), pytrace=False)
        # TensorFlow is imported (quietly) by the first persist call that needs it, not here:
        # a test comparing plain arrays with assert_golden, and the xdist worker running it,
        # never pay its 4-6 CPU-s import. A test body importing it first keeps the C++ lines
        # out of its captured output through this default.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        node = request.node
        node.user_properties.append((FORMAT_PROPERTY, param.id))
        settings = self.settings
        name, owner = golden_identity(node)
        golden = GoldenTarget(
            golden_dir_for(node.path, rootdir=settings.rootpath, golden_root=settings.golden_root),
            name, owner, node.nodeid, update=settings.update_golden, label=param.id,
            run_id=settings.run_id if settings.update_golden else None)
        request.addfinalizer(lambda: node.user_properties.extend(
            (GOLDEN_PROPERTY, f"{event}\t{path}") for event, path in golden.events))
        fmt = settings.registry.get(param.format)
        if isinstance(fmt, LazyFormat):  # the subprocess loader re-creates it by its class
            fmt = fmt.inner
        return Persist(fmt, tmp_path=request.getfixturevalue("tmp_path"),
                       options=settings.check_options(marker_options(node)),
                       nodeid=node.nodeid, golden=golden, loader=param.loader,
                       cache=self.cache(request), node=node,
                       archive=self.archive_item(request.config, owner, param))

    @staticmethod
    def archive_item(config: pytest.Config, owner: str, param: PersistParam) -> Any:
        """The item's archive side (archive.item.ArchiveItem), or None without an archive or
        when the item neither records (an item of the in-process loader) nor replays."""
        from .archive import ARCHIVE_KEY

        archive = config.stash.get(ARCHIVE_KEY, None)
        if archive is None or not (param.archive or (archive.record and param.loader ==
                                                     "inprocess")):
            return None
        from .archive.item import ArchiveItem

        return ArchiveItem(archive, owner, replay=param.archive)

    def cache(self, request: pytest.FixtureRequest) -> ArtifactCache:
        """The session's artifact cache (created on first use, under pytest's tmp dir)."""
        if self._cache is None:
            from .cache import ArtifactCache

            root = request.getfixturevalue("tmp_path_factory").mktemp("persist-cache")
            self._cache = ArtifactCache(root, enabled=self.settings.cache_enabled)
            if self._cache.enabled:  # an xdist worker: the workers' shared cache, or why not
                from .shared_cache import open_shared

                self._cache.shared, why = open_shared(request.config)
                self._cache.notes.extend([why] if why else [])
        return self._cache

    def cache_summary(self) -> dict[str, Any]:
        return self._cache.summary() if self._cache is not None else {}

    def cache_notes(self) -> list[str]:
        return list(self._cache.notes) if self._cache is not None else []
