"""Shared builders of small real models for the plugin's own tests (real TensorFlow)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "heavy: starts pytest, xdist workers or TensorFlow in subprocesses and takes "
        "tens of seconds; scheduled first (see pytest_collection_modifyitems)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heavy tests first, the rest in their order (a stable sort).

    pytest-xdist hands tests out in collection order: a heavy test collected last keeps one
    worker busy while the other has nothing left to do. Longest first keeps both busy (with
    `--dist worksteal`, as `make test` runs, the first worker starts with them and the other
    steals light tests from the end of its queue).
    """
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def x4(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((6, 4)).astype("float32")


def new_persist(fmt: Any, tmp_path: Path, **options: Any) -> Any:
    """A Persist for `fmt` (a registered name, a format class or object), outside any test item.

    `options` are CheckOptions fields (rtol=, safe_mode=, timeout=, ...); `golden=` a GoldenTarget.
    """
    from pytest_modelpersist.formats import BUILTIN_FORMATS
    from pytest_modelpersist.persist import Persist
    from pytest_modelpersist.settings import CheckOptions

    if isinstance(fmt, str):
        fmt = {f.name: f for f in BUILTIN_FORMATS}[fmt]
    if isinstance(fmt, type):
        fmt = fmt()
    golden = options.pop("golden_target", None)
    return Persist(fmt, tmp_path=tmp_path, options=CheckOptions(**options), golden=golden)


@pytest.fixture
def make_persist(tmp_path: Path) -> Callable[..., Any]:
    """Factory of Persist objects for unit tests: ``make_persist("h5", safe_mode=False)``."""
    count = iter(range(1_000_000))

    def make(fmt: Any, **options: Any) -> Any:
        return new_persist(fmt, tmp_path / f"persist-{next(count)}", **options)

    return make


@pytest.fixture(scope="session")
def tensorflow_warmed_up(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Import TensorFlow and every module the formats import lazily, once.

    pytester's in-process runs restore sys.modules afterwards: a TensorFlow (or one of its
    protobuf modules) first imported inside a run is dropped and imported again by the next
    run, which aborts the process. Exercising every format here imports them all up front.
    """
    from pytest_modelpersist.formats import BUILTIN_FORMATS

    import model_zoo

    x = np.ones((2, 4), np.float32)
    for fmt in BUILTIN_FORMATS:
        persist = new_persist(fmt, tmp_path_factory.mktemp("warm"))
        if persist.applies_to(model_zoo.functional()):  # onnx without its extra
            continue
        persist.check(model_zoo.functional(), x, build=model_zoo.functional)
        if fmt.name in ("ckpt", "savedmodel", "pb"):
            persist.check(model_zoo.seed_graph(), np.ones((2, 1), np.float32),
                          build=model_zoo.seed_graph)


@pytest.fixture
def pytester(pytester: pytest.Pytester, tensorflow_warmed_up: None,
             monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester, with TensorFlow and the formats' modules imported first (see above).

    CI is unset inside: the inner runs record goldens, which the plugin refuses on CI.
    """
    monkeypatch.delenv("CI", raising=False)
    return pytester
