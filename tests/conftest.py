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
