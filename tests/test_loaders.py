"""Deployment parity: the same artifact restored in-process, in a fresh interpreter and
through TensorFlow's C API, plus `persist.freeze`."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from pytest_modelpersist.formats import BUILTIN_FORMATS
from pytest_modelpersist.persist import CheckOptions, Persist

import model_zoo

FORMATS = {cls.name: cls for cls in BUILTIN_FORMATS}


def test_loader_items_and_ids(pytester):
    pytester.makepyfile("def test_a(persist):\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", "--persist-loaders=all")
    ids = [ln.split("::")[1] for ln in result.outlines if "::" in ln]
    assert ids == [
        "test_a[ckpt]", "test_a[ckpt-subprocess]", "test_a[tf_checkpoint]",
        "test_a[h5]", "test_a[h5-subprocess]", "test_a[weights_h5]",
        "test_a[keras]", "test_a[keras-subprocess]",
        "test_a[savedmodel]", "test_a[savedmodel-subprocess]", "test_a[savedmodel-capi]",
        "test_a[pb]", "test_a[pb-subprocess]", "test_a[pb-capi]",
    ]
    result = pytester.runpytest("--collect-only", "-q", "--persist-loaders=capi",
                                "--persist-formats=pb,h5")
    assert [ln.split("::")[1] for ln in result.outlines if "::" in ln] == ["test_a[pb-capi]"]
    result = pytester.runpytest("--persist-loaders=ssh")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown loader(s) ssh; known loaders: inprocess, subprocess, "
                                 "capi*"])


def test_marker_loaders(pytester):
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.persist(formats=['pb'], loaders=['capi'])\n"
        "def test_a(persist):\n    assert persist.loader == 'capi'\n"
    )
    result = pytester.runpytest("-v", "--persist-loaders=all")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_a[[]pb-capi[]] PASSED*"])


@pytest.mark.persist(loaders=["inprocess", "subprocess", "capi"])
@pytest.mark.parametrize("kind", ["sequential", "module", "graph"])
def test_every_loader_matches_the_original_and_the_golden(persist, kind):
    if kind == "graph":
        model, build, x = model_zoo.seed_graph(3.0, 4.0), model_zoo.seed_graph, np.ones((2, 1),
                                                                                         "float32")
    elif kind == "module":
        model, build, x = model_zoo.module(), model_zoo.module, np.ones((3, 4), "float32")
    else:  # no custom layer: loadable where the test's code is not (see below)
        model = model_zoo.randomize(model_zoo.sequential())
        build, x = model_zoo.sequential, np.linspace(-1, 1, 12, dtype="float32").reshape(3, 4)
    result = persist.check(model, x, build=build)
    assert result.restored[0].how  # which loader ran
    if persist.loader != "inprocess":
        assert result.restored[0].model is None  # nothing restored in this process


@pytest.mark.parametrize("fmt", ["pb", "savedmodel"])
def test_capi_outputs_equal_inprocess_outputs(fmt, tmp_path, x4):
    persist = Persist(FORMATS[fmt](), tmp_path=tmp_path, options=CheckOptions())
    model = model_zoo.randomize(model_zoo.functional())
    artifact = persist.save(model, inputs=x4)
    inprocess = persist.restore(artifact)(x4)
    capi = persist.restore(artifact, loader="capi")(x4)
    np.testing.assert_array_equal(capi[0], inprocess[0])


CUSTOM_LAYER_TEST = textwrap.dedent(
    """
    import numpy as np
    import keras
    import pytest

    # Registered only by importing this test module: a serving process would not have it.
    @keras.saving.register_keras_serializable(package="only_in_tests")
    class Shift(keras.layers.Layer):
        def call(self, x):
            return x + 1.0

    def build():
        inp = keras.Input((3,))
        return keras.Model(inp, keras.layers.Dense(2)(Shift()(inp)))

    @pytest.mark.persist(formats=["keras"], golden=False)
    def test_custom(persist):
        persist.check(build(), np.ones((2, 3), np.float32))
    """
)


def test_custom_layer_passes_inprocess_and_is_caught_by_subprocess(pytester):
    pytester.makepyfile(test_custom=CUSTOM_LAYER_TEST)
    result = pytester.runpytest("--persist-loaders=inprocess,subprocess", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*test_custom[[]keras-subprocess[]]*",
    ])
    result.stdout.fnmatch_lines([
        "*[[]keras[]] subprocess loader for */model.keras: restore failed in a fresh "
        "interpreter*Shift*",
    ])


def test_subprocess_loader_timeout_is_a_clear_failure(tmp_path, x4):
    persist = Persist(FORMATS["keras"](), tmp_path=tmp_path,
                      options=CheckOptions(timeout=0.01))
    artifact = persist.save(model_zoo.randomize(model_zoo.functional()), inputs=x4)
    restored = persist.restore(artifact, loader="subprocess")
    with pytest.raises(Exception, match=r"subprocess loader for .*model.keras: timed out after "
                                         r"0.01 s"):
        restored(x4)


def test_freeze_keras_and_graph_models_structure_and_files(tmp_path, x4):
    persist = Persist(FORMATS["pb"](), tmp_path=tmp_path, options=CheckOptions())
    model = model_zoo.randomize(model_zoo.functional())
    frozen = persist.freeze(model, x4)
    assert frozen.variable_ops() == [] and frozen.inputs == ["x:0"]
    from pytest_modelpersist.formats import pb as freezing

    for name, as_text in (("m.pb", False), ("m.pbtxt", True)):
        path = frozen.write(tmp_path / name, as_text=as_text)
        graph_def = freezing.read_graph_def(path)
        out = freezing.run_graph_def(graph_def, {"x:0": x4}, frozen.outputs)
        np.testing.assert_allclose(out[0], model(x4).numpy(), rtol=1e-6)

    graph = model_zoo.seed_graph(3.0, 4.0)
    frozen = persist.freeze(graph, exclude=["v2"])
    assert frozen.kept_variables == ["v2"]
    assert any("v2" in n for n in frozen.variable_ops())  # kept on purpose, not a failure
    full = persist.freeze(graph, outputs=["add"])
    assert full.variable_ops() == [] and full.outputs == ["add:0"]


def test_freeze_keep_list(tmp_path):
    persist = Persist(FORMATS["pb"](), tmp_path=tmp_path, options=CheckOptions())
    frozen = persist.freeze(model_zoo.seed_graph(3.0, 4.0), keep=["v1"])
    assert frozen.kept_variables == ["v2"]


def test_subprocess_imports_make_a_packaged_custom_layer_loadable(pytester):
    pkg = pytester.mkpydir("servinglib")
    (pkg / "layers.py").write_text(textwrap.dedent(
        """
        import keras

        @keras.saving.register_keras_serializable(package="servinglib")
        class Shift(keras.layers.Layer):
            def call(self, x):
                return x + 1.0
        """
    ))
    pytester.makepyfile(test_pkg=textwrap.dedent(
        """
        import numpy as np
        import keras
        import pytest
        from servinglib.layers import Shift

        @pytest.mark.persist(formats=["keras"], golden=False)
        def test_custom(persist):
            inp = keras.Input((3,))
            persist.check(keras.Model(inp, Shift()(inp)), np.ones((2, 3), np.float32))
        """
    ))
    pytester.makeini("[pytest]\npersist_subprocess_path = .\n"
                     "persist_subprocess_imports = servinglib.layers\n")
    result = pytester.runpytest("--persist-loaders=subprocess")
    result.assert_outcomes(passed=1)
