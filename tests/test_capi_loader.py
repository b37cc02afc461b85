"""The C API loader: frozen .pb files and SavedModels run through TensorFlow's
C API (ctypes, as C#/Go/Java programs do) in a process that never imports the
tensorflow Python package. Real TensorFlow, real files."""

import json
import os
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import numpy.testing as npt
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from pytest_modelpersist.loaders import capi  # noqa: E402
from pytest_modelpersist.loaders.capi import (  # noqa: E402
    CapiLoaderError,
    run_capi,
    savedmodel_signature,
    tf_lib_dir,
)

RTOL = 1e-6


def _x(n=5, seed=0):
    return np.random.RandomState(seed).uniform(-1, 1, (n, 3)).astype(np.float32)


def _keras_model():
    keras.utils.set_random_seed(1)
    inp = keras.Input((3,), name="x")
    h = keras.layers.Dense(8, activation="relu", name="d1")(inp)
    out = keras.layers.Dense(2, name="d2")(h)
    return keras.Model(inp, out)


class _Affine(tf.Module):
    def __init__(self):
        super().__init__()
        rng = np.random.RandomState(2)
        self.w = tf.Variable(rng.normal(size=(3, 4)).astype(np.float32), name="w")
        self.b = tf.Variable(rng.normal(size=(4,)).astype(np.float32), name="b")

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def __call__(self, x):
        return tf.nn.tanh(tf.matmul(x, self.w) + self.b)


def _freeze(fn, spec, path):
    """Freeze a tf.function into a .pb; return (input tensor name, output tensor name)."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    concrete = tf.function(fn).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(concrete)
    tf.io.write_graph(frozen.graph.as_graph_def(), str(path.parent), path.name, as_text=False)
    return frozen.inputs[0].name, frozen.outputs[0].name


@pytest.fixture(scope="module")
def keras_model():
    return _keras_model()


@pytest.fixture(scope="module")
def module():
    return _Affine()


@pytest.fixture(scope="module")
def keras_pb(keras_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("keras_pb") / "model.pb"
    names = _freeze(lambda x: keras_model(x), tf.TensorSpec([None, 3], tf.float32, name="x"), path)
    return path, names


@pytest.fixture(scope="module")
def keras_savedmodel(keras_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("keras_export") / "sm"
    keras_model.export(str(path))
    return path


@pytest.fixture(scope="module")
def module_savedmodel(module, tmp_path_factory):
    path = tmp_path_factory.mktemp("module_sm") / "sm"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    return path


# ---------------------------------------------------------------- tf_lib_dir


def test_tf_lib_dir_has_the_c_api_libraries():
    d = tf_lib_dir()
    assert (d / "libtensorflow_cc.so.2").is_file()
    assert (d / "libtensorflow_framework.so.2").is_file()
    assert (d / "include" / "tensorflow" / "c" / "c_api.h").is_file()


def test_tf_lib_dir_without_tensorflow(monkeypatch):
    real_find_spec = capi.importlib.util.find_spec
    monkeypatch.setattr(
        capi.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorflow" else real_find_spec(name, *a),
    )
    with pytest.raises(CapiLoaderError, match="not installed"):
        tf_lib_dir()


# ---------------------------------------------------------------- frozen .pb


def test_frozen_keras_pb_matches_model(keras_model, keras_pb, tmp_path):
    path, (inp, out) = keras_pb
    x = _x()
    (got,) = run_capi("pb", path, {inp: x}, [out], workdir=tmp_path)
    assert got.dtype == np.float32 and got.shape == (5, 2)
    npt.assert_allclose(got, keras_model(x).numpy(), rtol=RTOL)


def test_frozen_module_pb_matches_module(module, tmp_path):
    path = tmp_path / "module.pb"
    inp, out = _freeze(module.__call__, tf.TensorSpec([None, 3], tf.float32, name="x"), path)
    x = _x(7, seed=3)
    (got,) = run_capi("pb", path, {inp: x}, [out], workdir=tmp_path / "w")
    npt.assert_allclose(got, module(x).numpy(), rtol=RTOL)


def test_tf1_seed_graph_frozen_with_compat_v1(tmp_path):
    """The seeds' TF1 graph (v1 + v2 -> add), plus a placeholder x, frozen with
    tf.compat.v1.graph_util.convert_variables_to_constants."""
    g = tf.Graph()
    with g.as_default():
        v1 = tf.compat.v1.get_variable("v1", initializer=tf.constant([1.0, 2.0, 3.0]))
        v2 = tf.compat.v1.get_variable("v2", initializer=tf.constant([10.0, 20.0, 30.0]))
        add = tf.add(v1, v2, name="add")
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        tf.multiply(add, x, name="y")
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            xv = _x(4, seed=5)
            ref_add, ref_y = sess.run(["add:0", "y:0"], {"x:0": xv})
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                sess, g.as_graph_def(), ["add", "y"]
            )
    path = tmp_path / "seed.pb"
    path.write_bytes(frozen.SerializeToString())

    got_add, got_y = run_capi("pb", path, {"x:0": xv}, ["add:0", "y:0"], workdir=tmp_path)
    npt.assert_allclose(got_add, ref_add, rtol=RTOL)
    npt.assert_allclose(got_add, [11.0, 22.0, 33.0], rtol=RTOL)
    npt.assert_allclose(got_y, ref_y, rtol=RTOL)
    # No feeds at all: the constant part of the graph alone ("add" without "op:idx" suffix).
    (only_add,) = run_capi("pb", path, {}, ["add"], workdir=tmp_path / "nofeed")
    npt.assert_allclose(only_add, [11.0, 22.0, 33.0], rtol=RTOL)


DTYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_]


@pytest.fixture(scope="module")
def dtype_pb(tmp_path_factory):
    """One placeholder per dtype; out_<dtype> = f(in_<dtype>) so the data
    really goes through a kernel, and a scalar output."""
    g = tf.Graph()
    with g.as_default():
        for dt in DTYPES:
            name = np.dtype(dt).name
            p = tf.compat.v1.placeholder(tf.as_dtype(dt), [None, None], name=f"in_{name}")
            if dt is np.bool_:
                tf.logical_not(p, name=f"out_{name}")
            else:
                tf.add(p, tf.ones([], tf.as_dtype(dt)), name=f"out_{name}")
        tf.constant(42, tf.int64, name="scalar")
    path = tmp_path_factory.mktemp("dtypes") / "dtypes.pb"
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


@pytest.mark.parametrize("dt", DTYPES, ids=lambda d: np.dtype(d).name)
def test_dtypes_round_trip(dtype_pb, dt, tmp_path):
    name = np.dtype(dt).name
    rng = np.random.RandomState(0)
    if dt is np.bool_:
        x = rng.rand(3, 4) > 0.5
        want = ~x
    elif np.issubdtype(dt, np.floating):
        x = rng.uniform(-5, 5, (3, 4)).astype(dt)
        want = x + dt(1)
    else:
        x = rng.randint(0, 100, (3, 4)).astype(dt)
        want = x + dt(1)
    got, scalar = run_capi(
        "pb", dtype_pb, {f"in_{name}:0": x}, [f"out_{name}:0", "scalar:0"], workdir=tmp_path
    )
    assert got.dtype == np.dtype(dt)
    npt.assert_array_equal(got, want)
    assert scalar.shape == () and scalar.dtype == np.int64 and scalar == 42


def test_session_config(keras_model, keras_pb, tmp_path):
    """A serialized ConfigProto reaches TF_SetConfig (here: Grappler off, which
    FACTS.md found makes the first run of a big frozen graph much faster)."""
    path, (inp, out) = keras_pb
    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    x = _x()
    (got,) = run_capi(
        "pb", path, {inp: x}, [out], workdir=tmp_path,
        session_config=config.SerializeToString(),
    )
    npt.assert_allclose(got, keras_model(x).numpy(), rtol=RTOL)
    with pytest.raises(CapiLoaderError, match="TF_SetConfig failed"):
        run_capi("pb", path, {inp: x}, [out], workdir=tmp_path, session_config=b"\xff\xff\xff")


def test_empty_batch(keras_pb, tmp_path):
    path, (inp, out) = keras_pb
    (got,) = run_capi("pb", path, {inp: np.zeros((0, 3), np.float32)}, [out], workdir=tmp_path)
    assert got.shape == (0, 2)


# ---------------------------------------------------------------- SavedModel


def test_keras_export_signature_names(keras_savedmodel):
    inputs, outputs = savedmodel_signature(keras_savedmodel)
    # Keras 3 model.export(): input key = the Input's name, fed as serving_default_<name>:0;
    # the output of serving_default is StatefulPartitionedCall_1:0 (the "serve"
    # endpoint took StatefulPartitionedCall).
    assert inputs == {"x": "serving_default_x:0"}
    assert outputs == {"output_0": "StatefulPartitionedCall_1:0"}


def test_keras_export_savedmodel_matches_model(keras_model, keras_savedmodel, tmp_path):
    inputs, outputs = savedmodel_signature(keras_savedmodel)
    x = _x(6, seed=7)
    (got,) = run_capi(
        "savedmodel", keras_savedmodel, {inputs["x"]: x}, [outputs["output_0"]], workdir=tmp_path
    )
    npt.assert_allclose(got, keras_model(x).numpy(), rtol=RTOL)


def test_tf_saved_model_save_module_matches(module, module_savedmodel, tmp_path):
    inputs, outputs = savedmodel_signature(module_savedmodel)
    assert inputs == {"x": "serving_default_x:0"}
    assert outputs == {"output_0": "StatefulPartitionedCall:0"}
    x = _x(3, seed=8)
    (got,) = run_capi(
        "savedmodel", module_savedmodel, {inputs["x"]: x}, [outputs["output_0"]], workdir=tmp_path
    )
    npt.assert_allclose(got, module(x).numpy(), rtol=RTOL)


def test_savedmodel_signature_errors(keras_savedmodel, tmp_path):
    with pytest.raises(CapiLoaderError, match="no signature 'nope'"):
        savedmodel_signature(keras_savedmodel, "nope")
    with pytest.raises(CapiLoaderError, match="no meta graph with tags"):
        savedmodel_signature(keras_savedmodel, tags=("train",))
    with pytest.raises(CapiLoaderError, match="no saved_model.pb"):
        savedmodel_signature(tmp_path)


def test_savedmodel_wrong_tags(keras_savedmodel, tmp_path):
    with pytest.raises(CapiLoaderError) as exc:
        run_capi(
            "savedmodel", keras_savedmodel, {"serving_default_x:0": _x()},
            ["StatefulPartitionedCall_1:0"], workdir=tmp_path, tags=("train",),
        )
    msg = str(exc.value)
    assert "TF_LoadSessionFromSavedModel failed" in msg
    assert str(keras_savedmodel) in msg


# ---------------------------------------------------------------- no tensorflow import


def test_runner_never_imports_tensorflow(keras_pb, tmp_path, monkeypatch):
    path, (inp, out) = keras_pb
    modules_file = tmp_path / "modules.json"
    monkeypatch.setenv("MODELPERSIST_CAPI_MODULES_OUT", str(modules_file))
    run_capi("pb", path, {inp: _x()}, [out], workdir=tmp_path)
    modules = json.loads(modules_file.read_text())
    assert "numpy" in modules and "ctypes" in modules
    # Imported before the TF libraries: loading _hashlib after them segfaults.
    assert "numpy.random" in modules and "_hashlib" in modules
    assert not [m for m in modules if m == "tensorflow" or m.startswith("tensorflow.")]
    assert not [m for m in modules if m == "keras" or m.startswith("keras.")]
    assert "pytest_modelpersist" not in modules


def test_runner_refuses_success_if_tensorflow_got_imported(keras_pb, tmp_path, monkeypatch):
    """The runner's own guard: a stub 'tensorflow' imported by sitecustomize
    makes it exit 4 instead of reporting success."""
    site = tmp_path / "site"
    (site / "tensorflow").mkdir(parents=True)
    (site / "tensorflow" / "__init__.py").write_text("")
    (site / "sitecustomize.py").write_text("import tensorflow\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    path, (inp, out) = keras_pb
    with pytest.raises(CapiLoaderError, match="tensorflow Python package was imported") as exc:
        run_capi("pb", path, {inp: _x()}, [out], workdir=tmp_path / "w")
    assert "exited with code 4" in str(exc.value)


def test_runner_source_has_no_tensorflow_import():
    src = capi.RUNNER.read_text()
    assert "import tensorflow" not in src
    assert "from tensorflow" not in src


# ---------------------------------------------------------------- errors


def test_garbage_pb(tmp_path):
    path = tmp_path / "garbage.pb"
    path.write_bytes(b"\x00\xffthis is not a GraphDef\x13\x37" * 10)
    with pytest.raises(CapiLoaderError) as exc:
        run_capi("pb", path, {"x:0": _x()}, ["y:0"], workdir=tmp_path / "w")
    msg = str(exc.value)
    assert str(path) in msg
    assert "TF_GraphImportGraphDef failed" in msg
    assert "exited with code 3" in msg


def test_missing_pb(tmp_path):
    path = tmp_path / "absent.pb"
    with pytest.raises(CapiLoaderError, match="absent.pb"):
        run_capi("pb", path, {"x:0": _x()}, ["y:0"], workdir=tmp_path)


def test_nonexistent_fetch(keras_pb, tmp_path):
    path, (inp, _) = keras_pb
    with pytest.raises(CapiLoaderError) as exc:
        run_capi("pb", path, {inp: _x()}, ["no_such_op:0"], workdir=tmp_path)
    msg = str(exc.value)
    assert "'no_such_op:0'" in msg and str(path) in msg


def test_nonexistent_feed_and_bad_index(keras_pb, tmp_path):
    path, (inp, out) = keras_pb
    with pytest.raises(CapiLoaderError, match="feed tensor 'nope:0'"):
        run_capi("pb", path, {"nope:0": _x()}, [out], workdir=tmp_path)
    op = out.rsplit(":", 1)[0]
    with pytest.raises(CapiLoaderError, match=rf"fetch tensor '{op}:7'.*no output 7"):
        run_capi("pb", path, {inp: _x()}, [f"{op}:7"], workdir=tmp_path)


def test_wrong_feed_dtype_is_a_tf_error(keras_pb, tmp_path):
    path, (inp, out) = keras_pb
    with pytest.raises(CapiLoaderError, match="TF_SessionRun failed"):
        run_capi("pb", path, {inp: _x().astype(np.float64)}, [out], workdir=tmp_path)


def test_timeout(keras_pb, tmp_path):
    path, (inp, out) = keras_pb
    with pytest.raises(CapiLoaderError, match=r"timed out after 0.001 s") as exc:
        run_capi("pb", path, {inp: _x()}, [out], workdir=tmp_path, timeout=0.001)
    assert str(path) in str(exc.value)


def _fake_runner(tmp_path, body):
    script = tmp_path / "fake_runner.py"
    script.write_text(textwrap.dedent(body))
    return script


def test_runner_killed_by_signal(keras_pb, tmp_path, monkeypatch):
    script = _fake_runner(
        tmp_path,
        """
        import os, signal, sys
        print("about to crash", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
        """,
    )
    monkeypatch.setattr(capi, "RUNNER", script)
    path, (inp, out) = keras_pb
    with pytest.raises(CapiLoaderError, match="SIGSEGV") as exc:
        run_capi("pb", path, {inp: _x()}, [out], workdir=tmp_path)
    assert "about to crash" in str(exc.value)
    assert str(path) in str(exc.value)


def test_runner_writes_no_outputs(keras_pb, tmp_path, monkeypatch):
    monkeypatch.setattr(capi, "RUNNER", _fake_runner(tmp_path, "pass\n"))
    path, (inp, out) = keras_pb
    with pytest.raises(CapiLoaderError, match="wrote no outputs file"):
        run_capi("pb", path, {inp: _x()}, [out], workdir=tmp_path)


def test_bad_kind(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        run_capi("h5", tmp_path / "m.h5", {}, ["y:0"], workdir=tmp_path)


def test_runner_usage_error():
    import subprocess

    proc = subprocess.run([sys.executable, str(capi.RUNNER)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "usage" in proc.stderr


# ---------------------------------------------------------------- run_with_capi by files, not names


@pytest.mark.parametrize("which", ["graphdef", "savedmodel"])
def test_run_with_capi_follows_the_files_not_the_format_name(
        which, keras_model, keras_pb, keras_savedmodel, tmp_path):
    """A third-party format (any name) whose files are a GraphDef or a SavedModel runs."""
    from pytest_modelpersist.formats.base import Artifact
    from pytest_modelpersist.loaders import LoaderError, run_with_capi

    if which == "graphdef":
        path, (inp, out) = keras_pb
        artifact = Artifact("my_graph", path, path.parent, "keras",
                            {"inputs": [inp], "outputs": [out]})
    else:
        artifact = Artifact("my_export", keras_savedmodel, keras_savedmodel.parent, "keras", {})
    (got,) = run_with_capi(artifact, [_x()], timeout=120)
    npt.assert_allclose(got, keras_model(_x()).numpy(), rtol=RTOL, atol=1e-6)

    odd = Artifact("my_weights", tmp_path / "w.bin", tmp_path, "keras", {})
    (tmp_path / "w.bin").write_bytes(b"not a graph")
    with pytest.raises(LoaderError, match=r"\[my_weights\] .*w.bin: the C API loader reads a "
                                          "SavedModel directory, or a GraphDef file"):
        run_with_capi(odd, [_x()], timeout=120)
