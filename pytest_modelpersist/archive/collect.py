"""Which ``[<format>@<LABEL>]`` items a test gets: one per archived artifact of it."""

from __future__ import annotations

import pytest

from .options import ArchiveSettings
from .store import ENTRY


def archived_params(archive: ArchiveSettings, nodeid: str,
                    formats: list[str]) -> list[tuple[str, str]]:
    """(label, format) pairs archived for any parametrization of the test function `nodeid`,
    in label order, for the formats the test runs today."""
    if "::" not in nodeid:
        return []
    where, name = nodeid.rsplit("::", 1)
    found = []
    for label in archive.replay_labels():
        have = archive.store.formats_under(label, where, name)
        found += [(label, f) for f in formats if f in have]
    return found


def deselect_unarchived(archive: ArchiveSettings, items: list[pytest.Item],
                        config: pytest.Config) -> None:
    """Drop the archive items of parametrizations the label did not record (the function's
    other parametrizations did), so every archive item has an artifact to restore."""
    from ..collection import PersistParam, golden_identity

    keep, drop = [], []
    for item in items:
        param = getattr(getattr(item, "callspec", None), "params", {}).get("persist")
        if isinstance(param, PersistParam) and param.archive is not None:
            owner = golden_identity(item)[1]
            entry = archive.store.entry_dir(param.archive, owner, param.format)
            if not (entry / ENTRY).is_file():
                drop.append(item)
                continue
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep

