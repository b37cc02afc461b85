"""Shared builders of small real models for the plugin's own tests (real TensorFlow)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest_plugins = ["pytester"]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def x4(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((6, 4)).astype("float32")


@pytest.fixture(scope="session")
def tensorflow_warmed_up(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Import TensorFlow and every module the formats import lazily, once.

    pytester's in-process runs restore sys.modules afterwards: a TensorFlow (or one of its
    protobuf modules) first imported inside a run is dropped and imported again by the next
    run, which aborts the process. Exercising every format here imports them all up front.
    """
    from pytest_modelpersist.api import CheckOptions, Persist
    from pytest_modelpersist.formats import BUILTIN_FORMATS

    import model_zoo

    x = np.ones((2, 4), np.float32)
    for fmt in BUILTIN_FORMATS:
        persist = Persist(fmt(), tmp_path=tmp_path_factory.mktemp("warm"), options=CheckOptions())
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
