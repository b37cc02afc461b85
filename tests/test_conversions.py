"""The conversion formats (tflite, tflite_float16, tflite_dynamic, onnx) on real models and files.

Format objects are used directly (save -> manifest -> restore from the directory alone) for the
model-kind matrix; the plugin's behaviour (selection, tolerances, failure messages) through
pytester runs with --persist-formats naming the conversions.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from pytest_modelpersist.compare import compare_outputs
from pytest_modelpersist.formats.base import Artifact
from pytest_modelpersist.formats.onnx import OnnxFormat, missing_modules
from pytest_modelpersist.formats.tflite import (
    TFLiteDynamicFormat,
    TFLiteFloat16Format,
    TFLiteFormat,
)
from pytest_modelpersist.models import as_output_list
from pytest_modelpersist.models import run as run_nest
from pytest_modelpersist.restore.options import RestoreOptions

import model_zoo

CONVERSIONS = {f.name: f for f in (TFLiteFormat, TFLiteFloat16Format, TFLiteDynamicFormat,
                                   OnnxFormat)}
BUILDERS = {**model_zoo.KERAS_BUILDERS, "module": model_zoo.module}
needs_onnx = pytest.mark.skipif(bool(missing_modules()),
                                reason="pip install 'pytest-modelpersist[onnx]'")


def _params() -> list:
    return [pytest.param(name, marks=needs_onnx) if name == "onnx" else name
            for name in CONVERSIONS]


def run(model, x):
    """The model's outputs as a flat list (what a conversion's restore returns)."""
    return as_output_list(run_nest(model, x))


def convert_and_restore(fmt, model, x, tmp_path):
    """Save with `fmt`, then restore from the directory alone; (artifact, outputs)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    artifact = fmt.save(model, tmp_path, inputs=x)
    artifact.write_manifest()
    restored = fmt.restore(Artifact.from_directory(tmp_path), RestoreOptions())
    return artifact, restored(x)


def assert_within_format_tolerance(fmt, expected, actual):
    results = compare_outputs(expected, actual, table=fmt.tolerances)
    assert all(r.ok for r in results), [(r.name, r.max_abs, r.max_rel) for r in results]


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.parametrize("name", ["tflite", pytest.param("onnx", marks=needs_onnx)])
def test_conversion_of_every_model_kind(name, kind, x4, tmp_path):
    """The quantized variants share this path (only converter flags differ): see below."""
    fmt = CONVERSIONS[name]()
    build = BUILDERS[kind]
    model = build() if kind == "module" else model_zoo.randomize(build())
    artifact, actual = convert_and_restore(fmt, model, x4, tmp_path)
    assert artifact.path.exists() and artifact.path.stat().st_size > 0
    assert artifact.meta["inputs"] == [{"position": 0, "name": "x"}]
    assert [o["name"] for o in artifact.meta["outputs"]] == ["output_0"]
    assert_within_format_tolerance(fmt, run(model, x4), actual)


@pytest.mark.parametrize("name", _params())
def test_tf1_graph_model_converts_by_tensor_name(name, tmp_path):
    fmt = CONVERSIONS[name]()
    model = model_zoo.seed_graph(3.0, 4.0)
    x = np.array([[1.0], [2.0]], np.float32)
    artifact, (add, y) = convert_and_restore(fmt, model, x, tmp_path)
    assert [o["path"] for o in artifact.meta["outputs"]] == ["output_0", "output_1"]
    np.testing.assert_array_equal(add, [7.0])
    np.testing.assert_array_equal(y, [[7.0], [14.0]])


def two_in_two_out():
    """Inputs (a: 4 features, b: 3) and dict outputs {'logits', 'embedding'}."""
    from pytest_modelpersist._tf import import_keras

    keras = import_keras()
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    h = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([a, b]))
    outputs = {"logits": keras.layers.Dense(2)(h), "embedding": keras.layers.Dense(5)(h)}
    return model_zoo.randomize(keras.Model([a, b], outputs))


@pytest.mark.parametrize("name", ["tflite", pytest.param("onnx", marks=needs_onnx)])
def test_inputs_and_outputs_go_by_recorded_names(name, rng, tmp_path):
    """The converted model orders its tensors its own way (TFLite lists input b before a):
    feeds and fetches follow the manifest's names, and the manifest keeps the output paths."""
    fmt = CONVERSIONS[name]()
    model = two_in_two_out()
    x = [rng.standard_normal((5, 4)).astype("float32"),
         rng.standard_normal((5, 3)).astype("float32")]
    artifact, actual = convert_and_restore(fmt, model, x, tmp_path)
    doc = json.loads((tmp_path / "modelpersist.json").read_text())["meta"]
    assert doc["inputs"] == [{"position": 0, "name": "x"}, {"position": 1, "name": "x1"}]
    assert doc["outputs"] == [{"position": 0, "name": "output_0", "path": "embedding"},
                              {"position": 1, "name": "output_1", "path": "logits"}]
    assert doc["io"]["outputs"]["paths"] == ["embedding", "logits"]
    expected = model(x, training=False)
    assert sorted(actual) == ["embedding", "logits"]  # the model's own dict, by key
    np.testing.assert_allclose(actual["embedding"], expected["embedding"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(actual["logits"], expected["logits"], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"takes 2 input\(s\) \(x, x1\), got 1"):
        fmt.restore(artifact, RestoreOptions())(x[0])


def wide_model():
    """Dense 64x64 layers: big enough (>= 1024 weights) for TFLite to quantize them. Keras'
    Glorot initialization (seeded) keeps outputs of order 1, like a trained model's logits."""
    from pytest_modelpersist._tf import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(3)
    inp = keras.Input((64,))
    h = keras.layers.Dense(64, activation="relu")(inp)
    return keras.Model(inp, keras.layers.Dense(10)(h))


def test_quantized_variants_change_outputs_within_their_tolerance(tmp_path, rng):
    x = rng.standard_normal((8, 64)).astype("float32")
    model = wide_model()
    expected = run(model, x)
    errors = {}
    for cls in (TFLiteFloat16Format, TFLiteDynamicFormat):
        fmt = cls()
        _, actual = convert_and_restore(fmt, model, x, tmp_path / fmt.name)
        errors[fmt.name] = float(np.abs(actual[0] - expected[0]).max())
        # Quantized: not float-exact, but within the format's documented tolerance.
        assert not compare_outputs(expected, actual)[0].ok
        assert_within_format_tolerance(fmt, expected, actual)
    assert errors["tflite_float16"] < errors["tflite_dynamic"]


def test_unsupported_op_fails_at_conversion_and_names_the_op(tmp_path, rng):
    from pytest_modelpersist._tf import import_tensorflow

    tf = import_tensorflow()

    class Det(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2, 2], tf.float32)])
        def __call__(self, m):
            return tf.linalg.det(m)

    x = rng.standard_normal((3, 2, 2)).astype("float32")
    with pytest.raises(ValueError) as info:
        TFLiteFormat().save(Det(), tmp_path, inputs=x)
    text = str(info.value)
    assert text.startswith("[tflite] the TFLite converter failed:")
    assert "MatrixDeterminant" in text and "select_tf_ops=True" in text
    # the converter's sentences, not its MLIR dump or the Python call stack it prints as location
    assert "'tf.MatrixDeterminant' op is neither a custom op nor a flex op" in text
    assert "Some ops are not supported by the native TFLite runtime" in text
    assert "tf.entry_function" not in text and "callsite" not in text and len(text) < 700
    # With TF ops allowed it converts. TF 2.21's pip interpreter does not link the Flex
    # delegate that runs them, and the restored model says so; TF 2.15's does, and runs them.
    (tmp_path / "flex").mkdir()
    artifact = TFLiteFormat().save(Det(), tmp_path / "flex", inputs=x, select_tf_ops=True)
    assert artifact.meta["select_tf_ops"] is True
    restored = TFLiteFormat().restore(artifact, RestoreOptions())
    if tuple(int(p) for p in tf.__version__.split(".")[:2]) <= (2, 15):
        np.testing.assert_allclose(restored(x)[0], np.linalg.det(x), rtol=1e-5, atol=1e-6)
        return
    with pytest.raises(RuntimeError, match=r"runs TensorFlow ops through the Flex delegate "
                                           r"\(FlexMatrixDeterminant\)"):
        restored(x)


def test_conversions_are_not_in_all_but_run_when_named(pytester):
    pytester.makepyfile("def test_a(persist):\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", "--persist-formats=all",
                                "--persist-loaders=inprocess")
    ids = [ln.split("::")[1] for ln in result.outlines if "::" in ln]
    assert not any("tflite" in i or "onnx" in i for i in ids)
    result = pytester.runpytest("--collect-only", "-q", "--persist-loaders=inprocess",
                                "--persist-formats=pb,tflite,tflite_float16,tflite_dynamic,onnx")
    ids = [ln.split("::")[1] for ln in result.outlines if "::" in ln]
    assert ids == ["test_a[pb]", "test_a[tflite]", "test_a[tflite_float16]",
                   "test_a[tflite_dynamic]", "test_a[onnx]"]


CHECK_WIDE = """
    import numpy as np
    import pytest

    from test_conversions import wide_model

    X = np.random.default_rng(0).standard_normal((8, 64)).astype("float32")

    @pytest.mark.persist(golden=False)
    def test_default_tolerance(persist):
        persist.check(wide_model(), X)

    @pytest.mark.persist(golden=False, rtol=1e-6, atol=1e-6)
    def test_float_tolerance(persist):
        persist.check(wide_model(), X)
"""


def test_quantized_model_at_float_tolerance_fails_with_the_reason(pytester):
    pytester.syspathinsert(str(pytester_dir()))
    pytester.makepyfile(textwrap.dedent(CHECK_WIDE))
    result = pytester.runpytest("--persist-formats=tflite,tflite_dynamic",
                                "--persist-loaders=inprocess", "-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*test_float_tolerance?tflite_dynamic?*",
        "*[[]tflite_dynamic[]] restored outputs differ from the original model's*",
        "*tflite_dynamic converts the model to int8 weights with dynamic-range activations; its "
        "default float32 tolerance is rtol=0.05, atol=0.05, and this check asked for rtol=1e-06,"
        " atol=1e-06: a lossy conversion compared at float tolerances fails by design*",
    ])


def pytester_dir():
    from pathlib import Path

    return Path(__file__).parent


@pytest.mark.heavy
def test_onnx_items_skip_with_the_install_command_without_the_extra(pytester, monkeypatch):
    # A conftest hides the extra, as an environment without it would.
    pytester.makeconftest("import sys\nsys.modules['tf2onnx'] = None\n")
    monkeypatch.setenv("PYTHONPATH", str(pytester_dir()))
    pytester.makepyfile(textwrap.dedent(CHECK_WIDE))
    result = pytester.runpytest_subprocess("--persist-formats=onnx", "-rs",
                                           "--persist-loaders=inprocess")
    result.assert_outcomes(skipped=2)
    # "Keras 2 Functional model (keras)" on TF 2.15, whose venv has no onnx packages at all
    result.stdout.fnmatch_lines(["*[[]onnx[]] does not apply to Keras *Functional model*: the "
                                 "onnx extra is not installed (no tf2onnx*): pip install "
                                 "'pytest-modelpersist[[]onnx[]]'*"])
