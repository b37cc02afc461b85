"""The interface entry of golden sidecars: record, pass, fail with the diff, update."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_modelpersist.interface_golden import check_interface

OLD = {"signatures": {"serving_default": {"inputs": {"x": {"dtype": "float32",
                                                           "shape": [None, 4]}},
                                          "outputs": {"probs": {"dtype": "float32"}}}},
       "ops": ["MatMul", "Sigmoid"]}
NEW = {"signatures": {"serving_default": {"inputs": {"inputs": {"dtype": "float32",
                                                                "shape": [None, 4]}},
                                          "outputs": {"probs": {"dtype": "float16"}}}},
       "ops": ["DisableCopyOnRead", "MatMul", "Sigmoid"]}
locked: list[Path] = []


@contextlib.contextmanager
def lock(path: Path) -> Iterator[None]:
    locked.append(path)
    yield


def sidecar(tmp_path: Path, **extra: Any) -> Path:
    path = tmp_path / "t.golden.json"
    path.write_text(json.dumps({"golden_format": 1, "test": "t", "arrays": "t.0.npz",
                                "outputs": {}, **extra}))
    return path


def check(path: Path, fmt: str, current: Any, *, update: bool = False) -> str | None:
    return check_interface(path, fmt, current, update=update, lock=lock,
                           update_command='pytest "t.py::t[savedmodel]" --update-golden')


def test_old_sidecar_without_interfaces_passes_and_update_records(tmp_path: Path) -> None:
    path = sidecar(tmp_path)
    assert check(path, "savedmodel", OLD) is None
    assert "interfaces" not in json.loads(path.read_text())
    assert check(path, "savedmodel", OLD, update=True) == "recorded"
    doc = json.loads(path.read_text())
    assert doc["interfaces"] == {"savedmodel": OLD} and doc["test"] == "t"
    assert locked[-1] == path
    assert check(path, "savedmodel", OLD) is None  # same interface: nothing to do


def test_changed_interface_fails_with_readable_lines(tmp_path: Path) -> None:
    path = sidecar(tmp_path, interfaces={"savedmodel": OLD, "keras": {"layers": ["Dense"]}})
    with pytest.raises(pytest.fail.Exception) as info:
        check(path, "savedmodel", NEW)
    assert str(info.value).splitlines() == [
        f"[savedmodel] the savedmodel artifact's interface differs from the one recorded in "
        f"the golden {path} (what serving code, the C API and other clients rely on):",
        "  serving_default: input 'x' renamed to 'inputs'",
        "  serving_default: output 'probs' dtype float32 -> float16",
        "  ops added: DisableCopyOnRead",
        'to accept the new interface: pytest "t.py::t[savedmodel]" --update-golden',
    ]
    assert check(path, "savedmodel", NEW, update=True) == "updated"
    doc = json.loads(path.read_text())
    assert doc["interfaces"] == {"keras": {"layers": ["Dense"]}, "savedmodel": NEW}


def test_nothing_to_compare(tmp_path: Path) -> None:
    assert check(tmp_path / "absent.golden.json", "pb", OLD, update=True) is None
    assert not (tmp_path / "absent.golden.json").exists()
    assert check(sidecar(tmp_path), "third_party", None, update=True) is None
    broken = tmp_path / "b.golden.json"
    broken.write_text("{not json")
    assert check(broken, "pb", OLD, update=True) is None
    assert broken.read_text() == "{not json"
