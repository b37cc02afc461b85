"""Failure text cleanup (pytest_modelpersist.messages) on real TensorFlow/Keras errors."""

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

from pytest_modelpersist.errors import first_lines
from pytest_modelpersist.formats.keras_formats import KerasFormat
from pytest_modelpersist.loaders import LoaderError, run_in_subprocess
from pytest_modelpersist.messages import (
    cause_of,
    clean_message,
    config_dump,
    error_line,
    is_noise,
)

GATED = textwrap.dedent('''
    import keras

    @keras.saving.register_keras_serializable(package="zoo")
    class Gated(keras.layers.Layer):
        def call(self, x):
            return x * keras.activations.sigmoid(x)
''')


def test_keras_layer_error_loses_its_escape_codes_and_names_the_layer() -> None:
    import keras

    import model_zoo

    model_zoo.keras3_only("Keras 3 wraps a layer's call error in escape codes and 'Arguments "
                          "received by ...'")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    with pytest.raises(ValueError) as info:
        model(np.ones((2, 3), "float32"))
    raw = str(info.value)
    assert "\x1b[1m" in raw and "Arguments received by" in raw  # what Keras really sends
    text = first_lines(info.value)
    assert "\x1b" not in text and "[0m" not in text and "Arguments received" not in text
    assert text.startswith("Input 0 with name 'None' of layer 'd' is incompatible"), text
    assert text.endswith("(in Sequential.call())"), text


def test_tensorflow_startup_lines_are_dropped_before_the_real_error() -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    stderr = subprocess.run(
        [sys.executable, "-c", "import tensorflow as tf; tf.zeros([2, 3]) @ tf.zeros([4, 5])"],
        env=env, capture_output=True, text=True, timeout=300).stderr
    assert "oneDNN custom operations are on" in stderr  # the noise is real
    cleaned = clean_message(stderr)
    for noise in ("oneDNN", "absl::InitializeLog", "cpu_feature_guard", "I0000"):
        assert noise not in cleaned
    assert error_line(stderr).startswith("tensorflow.python.framework.errors_impl."
                                         "InvalidArgumentError: ")
    assert "Matrix size-incompatible: In[0]: [2,3], In[1]: [4,5]" in error_line(stderr)


def test_cuda_startup_lines_of_gpu_builds_are_noise() -> None:
    # A GPU build of TensorFlow on a machine without a driver prints these (the CPU wheel
    # installed here cannot produce them): absl ERROR lines about CUDA, then the real error.
    lines = [
        "E0000 00:00:1721234567.123456   12345 cuda_executor.cc:1015] failed call to cuInit: "
        "UNKNOWN ERROR (303)",
        "W0000 00:00:1721234567.123999   12345 gpu_device.cc:2344] Cannot dlopen some GPU "
        "libraries. Skipping registering GPU devices...",
        "E0000 00:00:1721234567.2   12345 graph_runner.cc:1] Op type not registered 'Foo'",
    ]
    assert [is_noise(ln) for ln in lines] == [True, True, False]
    assert clean_message("\n".join(lines)) == lines[2]


@pytest.fixture
def gated_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A Keras model with a custom layer from an importable module `gatedzoo` (in tmp_path)."""
    import keras

    (tmp_path / "gatedzoo.py").write_text(GATED)
    monkeypatch.syspath_prepend(str(tmp_path))
    import gatedzoo

    yield keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), gatedzoo.Gated()])
    keras.saving.get_custom_objects().pop("zoo>Gated", None)
    sys.modules.pop("gatedzoo", None)


def test_keras_config_dump_is_reduced_to_the_missing_class(gated_model, tmp_path) -> None:
    import keras

    import model_zoo

    model_zoo.keras3_only("Keras 3 appends the object's whole config to a deserialization error "
                          "(the plugin's own Keras 2 message: test_keras2.py)")
    gated_model.save(tmp_path / "m.keras")
    keras.saving.get_custom_objects().pop("zoo>Gated")
    with pytest.raises(TypeError) as info:
        keras.models.load_model(tmp_path / "m.keras")
    raw = str(info.value)
    assert len(raw) > 2000 and "Full object config" in raw  # the real dump
    text = first_lines(info.value)
    assert text == ("Could not locate class 'Gated' (module 'gatedzoo', registered as "
                    "'zoo>Gated'): it must be imported (registered) before the model is loaded")
    dump = config_dump(raw)
    assert dump is not None and dump.startswith("{'module': 'gatedzoo', 'class_name': 'Gated'")


def saved_keras(model: Any, tmp_path: Path, x: np.ndarray) -> tuple[KerasFormat, Any]:
    """`model` saved in the keras format under tmp_path/art, with its manifest."""
    fmt = KerasFormat()
    (tmp_path / "art").mkdir()
    artifact = fmt.save(model, tmp_path / "art", inputs=x)
    artifact.write_manifest()
    return fmt, artifact


def test_subprocess_missing_class_names_it_and_the_ini_line(gated_model, tmp_path) -> None:
    x = np.ones((2, 4), "float32")
    fmt, artifact = saved_keras(gated_model, tmp_path, x)
    with pytest.raises(LoaderError) as info:
        run_in_subprocess(fmt, artifact, [x], timeout=300)
    message = str(info.value)
    assert "(the test's code is not importable there)" in message
    assert "Could not locate class 'Gated'" in message
    assert "add `persist_subprocess_imports = gatedzoo` to the ini file" in message
    assert "Full object config" not in message and len(message) < 700, message
    assert info.value.details and "'class_name': 'Gated'" in info.value.details
    # With the ini line's import, the same artifact restores there.
    outputs = run_in_subprocess(fmt, artifact, [x], timeout=300, imports=["gatedzoo"],
                                sys_path=[str(tmp_path)])
    np.testing.assert_allclose(outputs[0], gated_model(x).numpy(), rtol=1e-6)


def test_subprocess_failure_that_is_not_a_missing_class_does_not_blame_imports(
        tmp_path: Path) -> None:
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    fmt, artifact = saved_keras(model, tmp_path, np.ones((2, 4), "float32"))
    # A real Keras error in the child: the model called on inputs of the wrong width.
    with pytest.raises(LoaderError) as info:
        run_in_subprocess(fmt, artifact, [np.ones((2, 3), "float32")], timeout=300)
    message = str(info.value)
    assert "not importable" not in message and "persist_subprocess" not in message
    assert "restore failed in a fresh interpreter: ValueError: " in message
    assert re.search(r"expected axis -1 of input shape to have value 4"  # Keras 3
                     r"|expected shape=\(None, 4\), found shape=\(2, 3\)", message), message
    assert "\x1b" not in message and "[1m" not in message


def test_cause_ignores_the_format_and_the_paths() -> None:
    a = ("[h5] restore /tmp/x/1/m.h5 (Keras model) failed: ValueError: Input 0 of layer 'd' "
         "is incompatible")
    b = ("[keras] restore /tmp/y/2/m.keras (Keras model) failed: ValueError: Input 0 of layer "
         "'d' is incompatible")
    assert cause_of(a) == cause_of(b) == "ValueError: Input 0 of layer 'd' is incompatible"
    assert cause_of("[pb] golden missing: /a/b.json") == "golden missing: <path>"
    # under xdist: the worker's header line is no cause (a strict xfail that passed, here)
    assert cause_of("[gw0] linux -- Python 3.11.7 /v/bin/python\n[XPASS(strict)] [h5] a bug"
                    ) == "[XPASS(strict)] [h5] a bug"


OPERATION_MODELS = {
    # the mask of Embedding(mask_zero=True) is recorded as the operation NotEqual
    "masked_rnn": """
        tokens = keras.Input((5,), dtype="int32")
        x = keras.layers.Embedding(20, 4, mask_zero=True)(tokens)
        x = keras.layers.LSTM(3)(x)
        return keras.Model(tokens, keras.layers.Dense(2)(x)), np.array(
            [[1, 2, 0, 0, 0], [3, 4, 5, 0, 0]], np.int32)
    """,
    # a residual `y + x`: the operation Add, rebuilt as the layer keras.layers.Add
    "residual": """
        x = keras.Input((4,))
        y = keras.layers.Dense(4)(x)
        return keras.Model(x, keras.layers.Dense(2)(y + x)), np.ones((2, 4), np.float32)
    """,
}


@pytest.mark.parametrize(("model", "failure"), [
    ("masked_rnn", "ValueError: Unknown layer: 'NotEqual'*"),
    ("residual", "TypeError: too many positional arguments*"),
])
def test_keras_operation_in_a_legacy_h5_config_gets_the_keras_format_hint(pytester, model,
                                                                          failure) -> None:
    """Keras 3 records operations applied to tensors as layers of the config, which its
    legacy HDF5 loader cannot rebuild: the h5 item fails saying so (and which layer it was
    rebuilding); .keras loads the model."""
    keras = pytest.importorskip("keras")
    if keras.__version__.startswith("2."):
        pytest.skip("Keras 2 records no operations in a model config")
    pytester.makepyfile(test_ops="import keras\nimport numpy as np\n\ndef build():"
                        + textwrap.indent(textwrap.dedent(OPERATION_MODELS[model]), "    ")
                        + "\ndef test_model(persist):\n    model, x = build()\n"
                          "    persist.check(model, x, golden=False)\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--persist-formats=h5,keras")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        f"*[[]h5[]] restore */model.h5 failed: {failure}",
        "looking at the files: *'NotEqual' is also a Keras operation*Save such a model as "
        ".keras*exclude=[[]'h5'[]])" if model == "masked_rnn" else
        "looking at the files: it failed while rebuilding layer 'add*' (Add); 'Add' is also a "
        "Keras operation*Save such a model as .keras*"])


REGISTERED_BACKBONE = """
import keras
import numpy as np


@keras.saving.register_keras_serializable(package="my_hub")
class Backbone(keras.Model):
    '''A Functional subclass registered with a package, as keras-hub registers its models.'''

    def __init__(self, units=3, **kwargs):
        x = keras.Input((4,), name="x")
        super().__init__(inputs=x, outputs=keras.layers.Dense(units, name="d")(x), **kwargs)
        self.units = units

    def get_config(self):
        return {"units": self.units, "name": self.name, "trainable": self.trainable}


def test_model(persist):
    persist.check(Backbone(), np.ones((2, 4), "float32"), golden=False)
"""


@pytest.mark.parametrize("bare_name", [False, True], ids=["package_only", "bare_name_too"])
def test_h5_of_a_class_registered_with_a_package_names_the_registration(pytester,
                                                                        bare_name) -> None:
    """Keras' legacy HDF5 loader finds a custom class by its bare name only, so a model
    registered as 'package>Name' (every keras-hub model) does not load from h5, in plain
    Keras too: the item says so and how to register it; registered so, the item passes."""
    pytester.makepyfile(test_backbone=REGISTERED_BACKBONE)
    if bare_name:  # the note's advice, in the conftest
        pytester.makeconftest("import keras\nfrom test_backbone import Backbone\n"
                              "keras.saving.get_custom_objects()['Backbone'] = Backbone\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--persist-formats=h5,keras")
    if bare_name:
        result.assert_outcomes(passed=2)
        return
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*[[]h5[]] restore */model.h5 failed: ValueError: Unknown layer: 'Backbone'*",
        "looking at the files: *'Backbone' is registered as 'my_hub>Backbone' "
        "(keras.saving.register_keras_serializable*the legacy HDF5 loader looks a custom class "
        "up by its bare name only*keras.saving.get_custom_objects()[[]'Backbone'[]] = "
        "<the class>*"])


UNREGISTERED_LAYER = """
import keras
import numpy as np


class TimesTwo(keras.layers.Layer):
    '''A custom layer nobody registered (keras.applications' ConvNeXt has one: LayerScale).'''

    def call(self, x):
        return 2.0 * x


def test_model(persist):
    x = keras.Input((4,), name="x")
    model = keras.Model(x, TimesTwo(name="times_two")(keras.layers.Dense(3, name="d")(x)))
    persist.check(model, np.ones((2, 4), "float32"), golden=False)
"""


def test_h5_of_an_unregistered_layer_names_where_it_is_defined(pytester) -> None:
    """A custom layer class that is not registered fails to load from legacy HDF5 (the file
    holds only its bare name; .keras records its module): the item names the module that
    defines it and how to register it."""
    pytester.makepyfile(test_times_two=UNREGISTERED_LAYER)
    result = pytester.runpytest("-p", "no:cacheprovider", "--persist-formats=h5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*[[]h5[]] restore */model.h5 failed: *Unknown layer: 'TimesTwo'*",
        "looking at the files: *a layer class 'TimesTwo' is defined in "
        "test_times_two.TimesTwo (imported here) but registered under no name*"
        "keras.saving.get_custom_objects()[[]'TimesTwo'[]] = <the class>*"])
