"""Converter options (onnx's opset, tflite's select_tf_ops) through the `persist` marker and ini:
declared by the formats, checked at collection, handed only to the formats that take them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_modelpersist.formats import BUILTIN, LazyFormat
from pytest_modelpersist.formats.onnx import missing_modules

HERE = Path(__file__).parent
RUN = ("--persist-loaders=inprocess", "-p", "no:randomly", "-p", "no:cacheprovider")
needs_onnx = pytest.mark.skipif(bool(missing_modules()),
                                reason="pip install 'pytest-modelpersist[onnx]'")


def test_formats_declare_the_converter_options_their_save_takes():
    import inspect

    declared = {name: dict(LazyFormat(name).save_options) for name in BUILTIN}
    assert {k: v for k, v in declared.items() if v} == {
        "tflite": {"select_tf_ops": bool}, "tflite_float16": {"select_tf_ops": bool},
        "tflite_dynamic": {"select_tf_ops": bool}, "onnx": {"opset": int},
        # the sharded saves (tests/test_sharding.py)
        "tf_checkpoint": {"max_shard_mb": float}, "savedmodel": {"max_shard_mb": float},
        "weights_h5": {"max_shard_mb": float}}
    for name, options in declared.items():
        params = inspect.signature(LazyFormat(name).inner.save).parameters
        assert set(options) <= set(params), name


SELECT = """
    import pytest
    from decision_models import Determinant, X_MATRICES

    def test_default(persist):
        persist.check(Determinant(), X_MATRICES, golden=False)

    @pytest.mark.persist(convert={"select_tf_ops": True})
    def test_select(persist):
        persist.check(Determinant(), X_MATRICES, golden=False)
"""


def flex_delegate_linked() -> bool:
    """Whether pip's TFLite interpreter here runs TensorFlow ops (the Flex delegate): TF 2.15's
    does, TF 2.21's does not link it (test_conversions shows both)."""
    import tensorflow as tf

    return tuple(int(p) for p in tf.__version__.split(".")[:2]) <= (2, 15)


def test_select_tf_ops_from_the_marker_and_ini(pytester):
    pytester.syspathinsert(str(HERE))
    pytester.makepyfile(textwrap.dedent(SELECT))
    result = pytester.runpytest(*RUN, "--persist-formats=tflite,h5")
    # h5 does not hold a tf.Module; tflite: refused by the converter, unless TF ops are kept
    # (then TF 2.21's pip interpreter cannot run them: the Flex delegate is not linked; TF
    # 2.15's runs them)
    flex = flex_delegate_linked()
    result.assert_outcomes(passed=int(flex), failed=2 - flex, skipped=2)
    result.stdout.fnmatch_lines([
        "*_ test_default[[]tflite[]] _*",
        "[[]tflite[]] save * failed: ValueError: [[]tflite[]] the TFLite converter failed: ops "
        "it could not convert: MatrixDeterminant;*select_tf_ops=True*",
    ] + ([] if flex else [
        "*_ test_select[[]tflite[]] _*",
        "[[]tflite[]] run the restored model * runs TensorFlow ops through the Flex delegate "
        "(FlexMatrixDeterminant)*",
    ]))
    pytester.makeini("[pytest]\npersist_convert =\n    select_tf_ops = yes\n")
    result = pytester.runpytest(*RUN, "--persist-formats=tflite")
    if flex:  # TF 2.15: both convert and run
        result.assert_outcomes(passed=2)
        return
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*_ test_default[[]tflite[]] _*",
        "[[]tflite[]] run the restored model * (FlexMatrixDeterminant)*",
    ])


OPSET = """
    import pytest
    from decision_models import Gather, X4

    def test_default(persist):
        persist.check(Gather(), X4, golden=False)

    @pytest.mark.persist(convert={"opset": 10})
    def test_opset10(persist):
        persist.check(Gather(), X4, golden=False)

    @pytest.mark.persist(convert={"opset": 13})
    def test_opset13(persist):
        result = persist.check(Gather(), X4, golden=False)
        if persist.format == "onnx":
            assert result.artifact.meta["opset"]["ai.onnx"] == 13
"""


@needs_onnx
def test_onnx_opset_from_the_marker_and_ini(pytester):
    pytester.syspathinsert(str(HERE))
    pytester.makepyfile(textwrap.dedent(OPSET))
    result = pytester.runpytest(*RUN, "--persist-formats=onnx,savedmodel", "-rA")
    # savedmodel takes no converter option: it passes whatever the marker says
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(["FAILED *test_opset10[[]onnx[]]*"])
    result.stdout.fnmatch_lines(["[[]onnx[]] restore * failed: Fail: *GatherNd*"])
    assert "Traceback" not in result.stdout.str() and "onnxruntime/capi" not in (
        result.stdout.str())
    pytester.makeini("[pytest]\npersist_convert = opset = 10\n")
    result = pytester.runpytest(*RUN, "--persist-formats=onnx", "-rA")
    # ini for every test; the marker's opset=13 wins over it
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["PASSED *test_opset13[[]onnx[]]*"])


@pytest.mark.parametrize("value, expected", [
    ("{'opsett': 13}", "unknown converter option(s) opsett; known: max_shard_mb (a number, for "
                       "tf_checkpoint, weights_h5, savedmodel); opset (an int, for onnx); "
                       "select_tf_ops (a bool (True or False), for tflite, tflite_float16, "
                       "tflite_dynamic)"),
    ("{'opset': '13'}", "opset='13': expected an int (for onnx), got str"),
    ("{'select_tf_ops': 1}", "select_tf_ops=1: expected a bool (True or False) (for tflite, "
                             "tflite_float16, tflite_dynamic), got int"),
])
def test_bad_converter_options_in_the_marker_fail_collection(pytester, value, expected):
    pytester.makepyfile(textwrap.dedent(f"""
        import pytest

        @pytest.mark.persist(convert={value})
        def test_a(persist):
            raise AssertionError("never runs")
    """))
    result = pytester.runpytest("--collect-only", "-q", "--persist-formats=h5")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert f"test_a: @pytest.mark.persist(convert={value}): {expected}" in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize("line, expected", [
    ("opset = thirteen", "cannot read 'opset = thirteen': opset='thirteen': expected an int"),
    ("select_tf_ops = maybe", "cannot read 'select_tf_ops = maybe': select_tf_ops='maybe': "
                              "expected a bool"),
    ("quantize = true", "cannot read 'quantize = true': unknown converter option(s) quantize; "
                        "known: max_shard_mb"),
    ("opset 13", "cannot read 'opset 13': write one 'option = value' per line"),
])
def test_bad_converter_options_in_ini_are_usage_errors(pytester, line, expected):
    pytester.makeini(f"[pytest]\npersist_convert = {line}\n")
    pytester.makepyfile("def test_a(persist):\n    pass\n")
    result = pytester.runpytest("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ini persist_convert: {expected}" in result.stderr.str()
