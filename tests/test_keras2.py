"""Keras 2 models (`tf_keras`, or TF 2.15's own `tf.keras`) through every format and loader.

Trained Sequential-with-BatchNormalization, two-output Functional and subclassed models with a
registered custom layer; each format goes through Keras 2's own API and the plugin's accounting.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_modelpersist.formats import BUILTIN_FORMATS
from pytest_modelpersist.models import KERAS2, as_output_list, describe, variables
from pytest_modelpersist.persist import CheckOptions, Persist

import keras2_zoo
import model_zoo

FORMATS = {cls.name: cls for cls in BUILTIN_FORMATS}

pytest.importorskip("tensorflow")
try:
    keras2_zoo.keras2()
except ImportError:  # pragma: no cover - the dev environments install tf-keras
    pytest.skip("no Keras 2 here: pip install tf-keras", allow_module_level=True)

# Trained models: their outputs depend on the TensorFlow version, so no committed goldens.
pytestmark = pytest.mark.persist(golden=False)

X4 = np.random.default_rng(5).standard_normal((6, 4)).astype("float32")
_TRAINED: dict[str, Any] = {}


def trained(kind: str) -> Any:
    """One trained model per kind for the whole module (saving does not change a model)."""
    if kind not in _TRAINED:
        _TRAINED[kind] = keras2_zoo.trained(keras2_zoo.BUILDERS[kind])
    return _TRAINED[kind]


def failure(call: Any) -> str:
    with pytest.raises(pytest.fail.Exception) as info:
        call()
    return str(info.value)


# The custom layers live in this test code, which a fresh interpreter cannot import: other
# loaders are covered by test_keras2_loaders below.
@pytest.mark.persist(loaders=["inprocess"])
@pytest.mark.parametrize("kind", sorted(keras2_zoo.BUILDERS))
def test_keras2_models_round_trip(persist, kind):
    model = trained(kind)
    result = persist.check(model, X4, build=keras2_zoo.BUILDERS[kind])
    expected = as_output_list(model(X4, training=False))
    for actual in result.actual:
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
    for restored in result.restored:  # every weights-only restore accounted for every variable
        if restored.report is not None:
            assert restored.report.complete and not restored.report.missing


@pytest.mark.persist(formats=["ckpt", "weights_h5", "tf_checkpoint", "h5"], loaders=["inprocess"])
def test_keras2_sublayer_weights_restore_into_a_rebuilt_model(persist):
    """A rebuilt Bidirectional(GRU) numbers its sublayers anew (forward_gru_1 saved,
    forward_gru_2 now): ckpt and weights_h5 restores into it were "incomplete: missing from
    the file 6". They go by position, sublayer numbers left out."""
    model = keras2_zoo.bidirectional_gru()
    persist.check(model, np.array([[1, 2, 0, 0, 0], [3, 4, 5, 0, 0]], np.int32),
                  build=keras2_zoo.bidirectional_gru, golden=False)


def test_keras2_loaders(persist):
    """Every loader (in-process, fresh interpreter, C API) on a model of built-in layers."""
    model = trained("sequential_bn")
    persist.check(model, X4, build=keras2_zoo.sequential_bn)


@pytest.mark.persist(formats=["h5", "keras"], loaders=["inprocess"])
def test_broken_get_config_is_caught(persist):
    model = keras2_zoo.forgetful()
    message = failure(lambda: persist.check(model, X4))
    assert message.startswith(f"[{persist.format}]")
    assert "factor" in message


def test_keras2_kind_and_variable_names():
    model = trained("sequential_bn")
    info = describe(model)
    assert info.kind == KERAS2
    assert info.detail.startswith("Keras 2 Sequential model")
    assert list(variables(model)) == [
        "d1/kernel", "d1/bias", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance",
        "out/kernel", "out/bias"]
    sub = describe(trained("subclassed"))
    assert sub.kind == KERAS2 and "subclassed (TinyNet2)" in sub.detail


BY_NAME_CASES = [("h5", {}), ("weights_h5", {"skip_mismatched": True})]


@pytest.mark.parametrize("fmt_name,by_name", BY_NAME_CASES)
def test_by_name_load_that_skips_a_renamed_layer_is_reported(fmt_name, by_name, tmp_path):
    """Keras 2's load_weights(by_name=True) silently skips renamed layers: the report names them."""
    persist = Persist(FORMATS[fmt_name](), tmp_path=tmp_path, options=CheckOptions(golden=False))
    artifact = persist.save(trained("sequential_bn"), inputs=X4)
    keras = keras2_zoo.keras2()
    renamed = keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="dense_in"),
        keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(3, name="out")])
    # Keras itself says nothing:
    renamed.load_weights(str(artifact.path), by_name=True)
    message = failure(lambda: persist.restore(artifact, into=renamed, **by_name))
    assert "dense_in/kernel" in message and "dense_in/bias" in message
    restored = persist.restore(artifact, into=renamed, **{**by_name, "strict": False})
    assert "bn/gamma" in restored.report.restored
    assert any(m.startswith("dense_in/kernel") for m in restored.report.missing)


LEGACY_TEST = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf

    def build():
        import tf_keras

        keras = tf.keras
        assert keras.Model is tf_keras.Model  # TF_USE_LEGACY_KERAS=1: tf.keras is Keras 2
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, name="d1"),
                                 keras.layers.BatchNormalization(name="bn"),
                                 keras.layers.Dense(2, name="out")])

    def test_legacy_tf_keras(persist):
        model = build()
        x = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
        for v in model.weights:
            v.assign(np.random.default_rng(1).uniform(0.5, 1.5, v.shape).astype("float32"))
        persist.check(model, x, build=build, golden=False)
""")


@pytest.mark.heavy
def test_tf_use_legacy_keras_in_a_subprocess(pytester, monkeypatch):
    """TF_USE_LEGACY_KERAS=1 makes `tf.keras` Keras 2 (TF 2.16+): only a fresh process sees it."""
    if keras2_zoo.keras2().__name__ == "keras":
        pytest.skip("TF_USE_LEGACY_KERAS is for TF 2.16+; here tf.keras is Keras 2 already")
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    pytester.makepyfile(test_legacy=LEGACY_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--persist-formats=all",
                                           "--persist-loaders=inprocess", "-rs")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes.get("passed", 0) >= 7, result.stdout.str()


@pytest.mark.heavy
def test_this_suite_passes_under_tf_use_legacy_keras(tmp_path):
    """This whole module again in a fresh interpreter with TF_USE_LEGACY_KERAS=1, where
    `tf.keras` is `tf_keras` (TF 2.16+): what a Keras 2 repository on a new TensorFlow runs."""
    from pytest_modelpersist import compat

    if compat.legacy_keras_requested():
        pytest.skip("this is the run under TF_USE_LEGACY_KERAS=1")
    if keras2_zoo.keras2().__name__ == "keras":
        pytest.skip("TF_USE_LEGACY_KERAS is for TF 2.16+; here tf.keras is Keras 2 already")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-p",
         "no:xdist", "--basetemp", str(tmp_path / "run")],
        cwd=Path(__file__).parent.parent, env=env, capture_output=True, text=True,
        timeout=900, check=False)
    tail = run.stdout[-3000:]
    assert run.returncode == 0, tail
    counts = dict((k, int(n)) for n, k in re.findall(r"(\d+) (passed|skipped|failed)", tail))
    assert counts.get("passed", 0) >= 40 and not counts.get("failed"), tail


def test_importing_the_plugin_imports_no_keras2(pytester):
    result = pytester.run(sys.executable, "-c", (
        "import sys, pytest_modelpersist, pytest_modelpersist.compat, pytest_modelpersist.plugin;"
        "bad = [m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules];"
        "print('IMPORTED', bad); sys.exit(1 if bad else 0)"))
    assert result.ret == 0, result.stdout.str()


# ---- compat.py: one function per version where no public API says it ----------------------


def both_kerases() -> list[Any]:
    """`keras` (Keras 3; Keras 2.15 on TF 2.15) and the Keras 2 package, each once."""
    found = [model_zoo.import_keras(), keras2_zoo.keras2()]
    return [k for i, k in enumerate(found) if k not in found[:i]]


def test_layer_graphs_are_recognised_in_each_keras():
    from pytest_modelpersist import compat

    for keras in both_kerases():
        inp = keras.Input((4,))
        functional = keras.Model(inp, keras.layers.Dense(2)(inp))
        sequential = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        assert compat.is_layer_graph(functional) and compat.is_layer_graph(sequential), keras
        assert compat.keras_package_of(functional) is keras
    assert not compat.is_layer_graph(keras2_zoo.subclassed())
    assert not compat.is_layer_graph(model_zoo.subclassed())


def lambda_model(keras: Any, marker: Any) -> Any:
    code = f"lambda t: (open({str(marker)!r}, 'a').write('ran'), t * 2.0)[1]"
    inp = keras.Input((4,), name="x")
    return keras.Model(inp, keras.layers.Lambda(eval(code))(inp))  # noqa: S307 - our own


def test_keras2_safe_mode_holds_against_a_global_unsafe_switch(tmp_path):
    """Keras 2's global enable_unsafe_deserialization() wins over load_model(safe_mode=True);
    the plugin's scope (compat.safe_mode_scopes) wins over it (test_bad_input: Keras 3)."""
    import importlib

    keras = keras2_zoo.keras2()
    marker = tmp_path / "ran"
    persist = Persist(FORMATS["keras"](), tmp_path=tmp_path / "p", options=CheckOptions())
    artifact = persist.save(lambda_model(keras, marker), inputs=X4)
    marker.unlink()
    lib = importlib.import_module(f"{keras.__name__}.src.saving.serialization_lib")
    before = getattr(lib.SAFE_MODE, "safe_mode", None)
    keras.__internal__.enable_unsafe_deserialization()
    try:
        message = failure(lambda: persist.restore(artifact.directory))
    finally:
        lib.SAFE_MODE.safe_mode = before
    assert message.startswith("[keras] ") and "Lambda" in message, message
    assert not marker.exists()


GATED2 = textwrap.dedent("""
    import keras2_zoo

    keras = keras2_zoo.keras2()

    @keras.saving.register_keras_serializable(package="zoo2")
    class Gated2(keras.layers.Layer):
        def call(self, x):
            return x * keras.activations.sigmoid(x)
""")


def test_unregistered_class_in_a_keras2_archive_is_named(tmp_path, monkeypatch):
    """Keras 2 reads an unregistered class defined outside __main__ as its name and fails with
    "'str' object is not callable"; the plugin names the class, as Keras 3 does."""
    (tmp_path / "gated2zoo.py").write_text(GATED2)
    monkeypatch.syspath_prepend(str(tmp_path))
    import gated2zoo

    keras = keras2_zoo.keras2()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), gated2zoo.Gated2()])
    persist = Persist(FORMATS["keras"](), tmp_path=tmp_path / "p", options=CheckOptions())
    artifact = persist.save(model, inputs=X4)
    keras.saving.get_custom_objects().pop("zoo2>Gated2")
    try:
        message = failure(lambda: persist.restore(artifact.directory))
    finally:
        sys.modules.pop("gated2zoo", None)
    assert "Could not locate class 'Gated2' (module 'gated2zoo', registered as 'zoo2>Gated2')" \
        in message, message
    assert "Full object config" not in message
