"""Small shared utilities: _atomic.atomic_write (goldens, frozen graphs, checkpoint state) and the
one name-list parser (formats, loaders)."""

from __future__ import annotations

import os
import stat

import pytest

from pytest_modelpersist._atomic import atomic_write, umask


@pytest.fixture
def set_umask():
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_final_mode_follows_the_umask(tmp_path, set_umask, mask, mode):
    set_umask(mask)
    assert umask() == mask
    path = atomic_write(tmp_path / "sub" / "f.bin", lambda f: f.write(b"abc"))
    assert path.read_bytes() == b"abc"
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert umask() == mask  # reading it did not change it


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def boom(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, boom)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_rename_to_picks_the_final_name_after_writing(tmp_path):
    seen = []

    def by_content(tmp):
        seen.append(tmp.read_bytes())
        return tmp_path / f"f.{len(seen[0])}.bin"

    path = atomic_write(tmp_path / "f.bin", lambda f: f.write(b"12345"), rename_to=by_content)
    assert path == tmp_path / "f.5.bin" and seen == [b"12345"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.5.bin"]


def test_loader_names_and_format_names_share_one_parser():
    from pytest_modelpersist._names import split_names
    from pytest_modelpersist.loaders import LOADERS, parse_loaders
    from pytest_modelpersist.registry import FormatRegistry

    assert split_names(" capi, ,inprocess,") == ["capi", "inprocess"]
    assert parse_loaders("capi, inprocess", "--persist-loaders", error=ValueError) == [
        "inprocess", "capi"]
    assert parse_loaders("all", "x", error=ValueError) == list(LOADERS)
    with pytest.raises(ValueError, match=r"marker: unknown loader\(s\) gpu; known loaders: "):
        parse_loaders(["gpu"], "marker", error=ValueError)
    with pytest.raises(ValueError, match=r"unknown loader\(s\) \(none\)"):
        parse_loaders(" , ", "x", error=ValueError)
    assert FormatRegistry().parse(" , ") == []
