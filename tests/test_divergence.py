"""Where a restored or converted Keras model diverges: the first layer, its weights, its config."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from pytest_modelpersist import divergence
from pytest_modelpersist._tf import import_keras

LAYERS = '''
import keras


@keras.saving.register_keras_serializable(package="divergence_tests")
class Standardize(keras.layers.Layer):
    """(x - mean) * factor, with `mean` a weight; get_config() forgets `factor`."""

    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.mean = self.add_weight(shape=(input_shape[-1],), initializer="random_normal",
                                    name="mean")

    def call(self, x):
        return (x - self.mean) * self.factor

    def get_config(self):
        return super().get_config()  # the bug: no "factor"


def build():
    keras.utils.set_random_seed(0)
    inp = keras.Input((4,), name="x")
    h = keras.layers.Dense(8, activation="relu", name="hidden")(inp)
    h = Standardize(2.5, name="standardize")(h)
    return keras.Model(inp, keras.layers.Dense(2, name="head")(h))
'''


@pytest.fixture
def forgetful(tmp_path, monkeypatch):
    """The module above, importable (its layer registered once per process)."""
    (tmp_path / "forgetful_layers.py").write_text(LAYERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import forgetful_layers

    return forgetful_layers


def test_names_the_layer_whose_config_field_was_forgotten(forgetful, tmp_path, rng):
    keras = import_keras()
    model = forgetful.build()
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    x = rng.standard_normal((6, 4)).astype("float32")
    found = divergence.first_divergence(model, restored, [x])
    assert found is not None
    assert (found.layer, found.class_name) == ("standardize", "Standardize")
    assert found.weights == "its weights restored identical"
    assert found.config == ("its config differs: factor 2.5 != 1.0 (an attribute get_config() "
                            "does not return)")
    assert str(found).startswith("first divergence: layer 'standardize' (Standardize), max abs ")


def test_weights_that_differ_are_named(forgetful, rng):
    model = forgetful.build()
    other = forgetful.build()
    kernel = other.get_layer("hidden").kernel
    kernel.assign(kernel.numpy() + 0.5)
    x = rng.standard_normal((6, 4)).astype("float32")
    found = divergence.first_divergence(model, other, [x])
    assert found.layer == "hidden"
    assert found.weights == "its weights differ: kernel max abs 0.5"
    assert found.config == "its config is the same"
    # Bounded: comparing only the first layer still finds it; nothing before it differs.
    assert divergence.first_divergence(model, other, [x], max_layers=1).truncated
    assert divergence.first_divergence(model, model, [x]) is None


def test_subclassed_models_are_not_explained():
    import model_zoo

    model = model_zoo.subclassed()
    assert divergence.explain(model, model, [np.zeros((1, 4), np.float32)]) == ""


def test_tflite_tensors_are_matched_to_layers(forgetful, tmp_path, rng):
    """A converted model computed from other weights: the first matched layer that differs."""
    from pytest_modelpersist.formats.tflite import TFLiteFormat
    from pytest_modelpersist.restore.options import RestoreOptions

    model = forgetful.build()
    other = forgetful.build()
    kernel = other.get_layer("hidden").kernel
    kernel.assign(kernel.numpy() * 2)
    x = rng.standard_normal((6, 4)).astype("float32")
    fmt = TFLiteFormat()
    restored = fmt.restore(fmt.save(other, tmp_path, inputs=x), RestoreOptions())
    line = divergence.explain_restored(model, restored, [x])
    assert line.startswith("first divergence in the converted model: layer 'hidden' (Dense), "
                           "max abs ")


CHECK = """
    import numpy as np
    import pytest

    from forgetful_layers import build

    @pytest.mark.persist(golden=False)
    def test_roundtrip(persist):
        x = np.random.default_rng(0).standard_normal((6, 4)).astype("float32")
        persist.check(build(), x)
"""


def test_check_failure_reports_the_first_divergence(pytester, forgetful, tmp_path):
    pytester.syspathinsert(str(tmp_path))
    pytester.makepyfile(textwrap.dedent(CHECK))
    result = pytester.runpytest("--persist-formats=keras", "--persist-loaders=inprocess")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*[[]keras[]] restored outputs differ from the original model's*",
        "*first divergence: layer 'standardize' (Standardize), max abs *; its weights restored "
        "identical; its config differs: factor 2.5 != 1.0 (an attribute get_config() does not "
        "return)*",
    ])
