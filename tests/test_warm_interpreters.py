"""The subprocess loader's warm interpreters (loaders/warm.py): TensorFlow is imported once per
pytest process and environment, and every restore still runs in a fresh child of its own, with
the same failures (crash, timeout, missing class) as a cold start."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_modelpersist.formats.keras_formats import KerasFormat
from pytest_modelpersist.loaders import LoaderError, run_in_subprocess, warm

pytestmark = pytest.mark.skipif(not warm.enabled(), reason="no os.fork here, or disabled")

X = np.ones((2, 4), "float32")

GATED = """
import keras

@keras.saving.register_keras_serializable(package="warmzoo")
class Gated(keras.layers.Layer):
    def call(self, x):
        return x * keras.activations.sigmoid(x)  # Keras 2 (TF 2.15) has no keras.ops
"""

CRASHING_FORMAT = """
import os
import signal

from pytest_modelpersist.formats.keras_formats import KerasFormat


class CrashingKeras(KerasFormat):
    def restore(self, artifact, options):
        os.kill(os.getpid(), signal.SIGSEGV)
"""


def saved(model: Any, tmp_path: Path) -> Any:
    (tmp_path / "art").mkdir()
    artifact = KerasFormat().save(model, tmp_path / "art", inputs=X)
    artifact.write_manifest()
    return artifact


def servers(runner: str = "subprocess") -> list[Any]:
    """The live warm interpreters of `runner` in this process."""
    server = warm._servers.get((runner, sys.executable))
    return [server] if server is not None and server.proc.poll() is None else []


def server_pid(runner: str = "subprocess") -> int:
    (server,) = servers(runner)
    return server.proc.pid


@pytest.fixture
def module_dir(tmp_path: Path) -> Any:
    """tmp_path/mods on sys.path, holding warmzoo.py and crashfmt.py."""
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "warmzoo.py").write_text(GATED)
    (mods / "crashfmt.py").write_text(CRASHING_FORMAT)
    sys.path.insert(0, str(mods))
    yield mods
    sys.path.remove(str(mods))
    for name in ("warmzoo", "crashfmt"):
        sys.modules.pop(name, None)


def test_each_restore_gets_a_fresh_child_of_one_warm_interpreter(module_dir, tmp_path):
    import keras
    import warmzoo

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), warmzoo.Gated()])
    artifact = saved(model, tmp_path)
    outputs = run_in_subprocess(KerasFormat(), artifact, [X], timeout=300,
                                imports=["warmzoo"], sys_path=[str(module_dir)])
    np.testing.assert_allclose(outputs[0], model(X).numpy(), rtol=1e-6)
    pid = server_pid()
    # The previous child imported warmzoo; this one is a new process that did not.
    with pytest.raises(LoaderError, match="Could not locate class 'Gated'"):
        run_in_subprocess(KerasFormat(), artifact, [X], timeout=300)
    assert server_pid() == pid


def test_a_crashing_child_is_reported_and_the_next_item_is_served(module_dir, tmp_path):
    import crashfmt
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    artifact = saved(model, tmp_path)
    with pytest.raises(LoaderError, match=r"subprocess loader for .*model.keras: the process "
                                          r"crashed with SIGSEGV \(exit code -11\)"):
        run_in_subprocess(crashfmt.CrashingKeras(), artifact, [X], timeout=300,
                          sys_path=[str(module_dir)])
    pid = server_pid()
    with pytest.raises(LoaderError, match=r"timed out after 0.01 s"):
        run_in_subprocess(KerasFormat(), artifact, [X], timeout=0.01)
    outputs = run_in_subprocess(KerasFormat(), artifact, [X], timeout=300)
    np.testing.assert_allclose(outputs[0], model(X).numpy(), rtol=1e-6)
    assert server_pid() == pid


@pytest.mark.heavy
def test_another_environment_gets_its_own_interpreter(monkeypatch, tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    artifact = saved(model, tmp_path)
    run_in_subprocess(KerasFormat(), artifact, [X], timeout=300)
    (before,) = servers()
    monkeypatch.setenv("MODELPERSIST_TEST_MARK", "1")  # a child must see what a cold one would
    run_in_subprocess(KerasFormat(), artifact, [X], timeout=300)
    assert server_pid() != before.proc.pid and before.proc.poll() is not None

    monkeypatch.setenv("PERSIST_WARM_INTERPRETERS", "0")
    (current,) = servers()
    outputs = run_in_subprocess(KerasFormat(), artifact, [X], timeout=300)  # a cold start
    np.testing.assert_allclose(outputs[0], model(X).numpy(), rtol=1e-6)
    assert servers() == [current]


def test_capi_items_fork_from_one_warm_process(tmp_path):
    import keras

    from pytest_modelpersist.formats.pb import freeze_model
    from pytest_modelpersist.loaders.capi import run_capi

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    frozen = freeze_model(model, X)
    path = frozen.write(tmp_path / "model.pb")
    outputs = run_capi("pb", path, {frozen.inputs[0]: X}, frozen.outputs, workdir=tmp_path)
    np.testing.assert_allclose(outputs[0], model(X).numpy(), rtol=1e-5)
    pid = server_pid("capi")
    with pytest.raises(LoaderError, match="C API pb loader for .*model.pb: .*timed out after"):
        run_capi("pb", path, {frozen.inputs[0]: X}, frozen.outputs, workdir=tmp_path,
                 timeout=0.001)
    outputs = run_capi("pb", path, {frozen.inputs[0]: X}, frozen.outputs, workdir=tmp_path)
    np.testing.assert_allclose(outputs[0], model(X).numpy(), rtol=1e-5)
    assert server_pid("capi") == pid
    # tests/test_capi_loader.py::test_runner_never_imports_tensorflow reads a child's modules.

