"""Keras 2 models (`tf_keras`, or TF 2.15's own `tf.keras`) through every format and loader.

Trained Sequential-with-BatchNormalization, two-output Functional and subclassed models with a
registered custom layer; each format goes through Keras 2's own API and the plugin's accounting.
"""

from __future__ import annotations

import sys
import textwrap
from typing import Any

import numpy as np
import pytest

from pytest_modelpersist.formats import BUILTIN_FORMATS
from pytest_modelpersist.models import KERAS2, as_output_list, describe, variables
from pytest_modelpersist.persist import CheckOptions, Persist

import keras2_zoo

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


def test_importing_the_plugin_imports_no_keras2(pytester):
    result = pytester.run(sys.executable, "-c", (
        "import sys, pytest_modelpersist, pytest_modelpersist.compat, pytest_modelpersist.plugin;"
        "bad = [m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules];"
        "print('IMPORTED', bad); sys.exit(1 if bad else 0)"))
    assert result.ret == 0, result.stdout.str()
