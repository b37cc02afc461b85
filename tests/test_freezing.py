"""formats/pb: freeze Keras models, tf.Modules and TF1 session graphs into GraphDefs, write them
as .pb / .pbtxt, read them back and run them. Real TensorFlow, real files; every expected value
comes from running the ORIGINAL model."""

import os
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import numpy.testing as npt
import pytest

from pytest_modelpersist._tf import (  # noqa: E402
    import_keras,
    import_tensorflow,
    tensorflow_available,
)

if not tensorflow_available():  # pragma: no cover
    pytest.skip("TensorFlow is not installed", allow_module_level=True)
tf = import_tensorflow()  # quietly: no oneDNN/absl lines on stderr
keras = import_keras()

from pytest_modelpersist.formats.pb import (  # noqa: E402
    FrozenGraph,
    GraphTooLargeError,
    freeze_function,
    freeze_session,
    freeze_v2,
    read_graph_def,
    run_graph_def,
    size,
)

import model_zoo  # noqa: E402

RTOL, ATOL = 1e-6, 1e-7
SUFFIXES = [("model.pb", False), ("model.pbtxt", True)]


def _x(n=5, seed=0):
    return np.random.RandomState(seed).uniform(-1, 1, (n, 3)).astype(np.float32)


# ---- models ------------------------------------------------------------------------------------


@pytest.fixture
def keras_model():
    keras.utils.set_random_seed(1)
    inp = keras.Input((3,), name="x")
    h = keras.layers.Dense(8, activation="relu", name="d1")(inp)
    out = keras.layers.Dense(2, name="d2")(h)
    return keras.Model(inp, out)


@pytest.fixture
def keras_fn(keras_model):
    return tf.function(lambda x: keras_model(x, training=False)).get_concrete_function(
        tf.TensorSpec([None, 3], tf.float32, name="x")
    )


class _Affine(tf.Module):
    """Two outputs (a dict), so output order matters."""

    def __init__(self):
        super().__init__()
        rng = np.random.RandomState(2)
        self.w = tf.Variable(rng.normal(size=(3, 4)).astype(np.float32), name="w")
        self.b = tf.Variable(rng.normal(size=(4,)).astype(np.float32), name="b")

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def __call__(self, x):
        return {"z": tf.matmul(x, self.w) + self.b, "a": tf.reduce_sum(x, axis=1) * 2.0}


class _Branchy(tf.Module):
    """A nested tf.function and a tf.cond: the graph has a function library before inlining."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2) / 7.0, name="w")
        self.s = tf.Variable(1.5, name="s")

    @tf.function
    def _inner(self, x):
        return tf.matmul(x, self.w)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def __call__(self, x):
        y = self._inner(x)
        return tf.cond(tf.reduce_sum(x) > 0, lambda: y * self.s, lambda: y - self.s)


def _seed_graph(with_placeholder: bool):
    """The seed TF1 model: v1 + v2 -> add (and y = add * x with a placeholder x)."""
    with tf.Graph().as_default() as g:
        v1 = tf.compat.v1.Variable([1.0], name="v1")
        v2 = tf.compat.v1.Variable([2.0], name="v2")
        add = tf.add(v1, v2, name="add")
        if with_placeholder:
            x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
            tf.multiply(add, x, name="y")
        init = tf.compat.v1.global_variables_initializer()
    sess = tf.compat.v1.Session(graph=g)
    sess.run(init)
    return sess


@pytest.fixture
def seed_session():
    sess = _seed_graph(with_placeholder=False)
    yield sess
    sess.close()


@pytest.fixture
def seed_session_x():
    sess = _seed_graph(with_placeholder=True)
    yield sess
    sess.close()


def _roundtrip(frozen: FrozenGraph, path, as_text, feeds):
    written = frozen.write(path, as_text=as_text)
    assert written == path and path.stat().st_size > 0
    graph_def = read_graph_def(path)
    return graph_def, run_graph_def(graph_def, feeds, frozen.outputs)


# ---- freeze_function ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,as_text", SUFFIXES)
def test_keras_model_roundtrip(keras_model, keras_fn, tmp_path, name, as_text):
    x = _x()
    expected = keras_model(x, training=False).numpy()
    frozen = freeze_function(keras_fn)
    assert frozen.inputs == ["x:0"]  # the argument placeholder, not the captured handles
    assert len(frozen.outputs) == 1
    assert frozen.kept_variables == []
    assert frozen.variable_ops() == []
    assert {n.op for n in frozen.graph_def.node} >= {"Const", "MatMul"}
    graph_def, (y,) = _roundtrip(frozen, tmp_path / name, as_text, {"x:0": x})
    assert graph_def == frozen.graph_def
    npt.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)


def test_binary_file_is_tensorflows_serialization(keras_fn, tmp_path):
    """The node-by-node writer gives exactly SerializeToString(deterministic=True)."""
    frozen = freeze_function(keras_fn)
    path = frozen.write(tmp_path / "sub" / "m.pb")  # parent directories are created
    assert path.read_bytes() == frozen.graph_def.SerializeToString(deterministic=True)
    assert [p.name for p in path.parent.iterdir()] == ["m.pb"]  # no temporary file left


@pytest.mark.parametrize("name,as_text", SUFFIXES)
def test_tf_module_roundtrip(tmp_path, name, as_text):
    module = _Affine()
    x = _x(seed=3)
    expected = [t.numpy() for t in tf.nest.flatten(module(x))]  # outputs in flattened order
    frozen = freeze_function(module.__call__.get_concrete_function())
    assert frozen.inputs == ["x:0"]
    assert len(frozen.outputs) == 2
    assert frozen.variable_ops() == []
    _, got = _roundtrip(frozen, tmp_path / name, as_text, {frozen.inputs[0]: x})
    for g, e in zip(got, expected, strict=True):
        npt.assert_allclose(g, e, rtol=RTOL, atol=ATOL)


def test_tf_function_with_signature_accepted(tmp_path):
    module = _Affine()
    frozen = freeze_function(module.__call__)  # not a ConcreteFunction: its signature is used
    x = _x(seed=4)
    expected = tf.nest.flatten(module(x))
    got = run_graph_def(frozen.graph_def, {"x:0": x}, frozen.outputs)
    for g, e in zip(got, expected, strict=True):
        npt.assert_allclose(g, e.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_nested_function_and_cond_are_frozen(tmp_path, sign):
    module = _Branchy()
    fn = module.__call__.get_concrete_function()
    assert fn.graph.as_graph_def().library.function  # there is something to inline
    frozen = freeze_function(fn)
    assert frozen.variable_ops() == []
    x = sign * np.abs(_x(seed=5))
    _, (y,) = _roundtrip(frozen, tmp_path / "b.pb", False, {"x:0": x})
    npt.assert_allclose(y, module(x).numpy(), rtol=RTOL, atol=ATOL)


def test_exclude_keeps_variable_as_variable_op(keras_model, keras_fn, tmp_path):
    frozen = freeze_function(keras_fn, exclude=["d1/kernel"])
    assert frozen.kept_variables == ["d1/kernel"]
    ops = frozen.variable_ops()
    assert "d1/kernel" in ops  # the VarHandleOp, named after the variable
    nodes = {n.name: n for n in frozen.graph_def.node}
    assert nodes["d1/kernel"].op == "VarHandleOp"
    assert nodes["d1/kernel"].attr["shared_name"].s == b"d1/kernel"
    assert all(nodes[n].op in {"VarHandleOp", "ReadVariableOp"} for n in ops)
    assert sum(n.op == "Const" for n in frozen.graph_def.node) >= 3  # the other three

    x = _x()
    path = frozen.write(tmp_path / "partial.pb")
    graph_def = read_graph_def(path)
    with pytest.raises((tf.errors.FailedPreconditionError, tf.errors.NotFoundError)):
        run_graph_def(graph_def, {"x:0": x}, frozen.outputs)  # the kept variable has no value

    # give the kept variable its value in a session: the rest of the graph is intact
    kernel = next(v for v in keras_model.weights
                  if model_zoo.weight_path(v) == "d1/kernel").numpy()
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
        assign = tf.raw_ops.AssignVariableOp(
            resource=graph.get_tensor_by_name("d1/kernel:0"), value=tf.constant(kernel)
        )
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(assign)
        y = sess.run(frozen.outputs[0], {"x:0": x})
    npt.assert_allclose(y, keras_model(x, training=False).numpy(), rtol=RTOL, atol=ATOL)


def test_keep_list_converts_only_those(keras_fn):
    frozen = freeze_function(keras_fn, keep=["d1/kernel:0"])  # ':0' accepted
    assert sorted(frozen.kept_variables) == ["d1/bias", "d2/bias", "d2/kernel"]
    ops = frozen.variable_ops()
    for name in frozen.kept_variables:
        assert name in ops
    assert "d1/kernel" not in ops


def test_unknown_variable_names_are_an_error(keras_fn):
    with pytest.raises(ValueError, match="nope"):
        freeze_function(keras_fn, exclude=["nope"])
    with pytest.raises(ValueError, match="d1/kernel"):  # lists the variables there are
        freeze_function(keras_fn, keep=["kernel"])


# ---- freeze_session (TF1 graph) ----------------------------------------------------------------


@pytest.mark.parametrize("name,as_text", SUFFIXES)
def test_seed_graph_roundtrip(seed_session, tmp_path, name, as_text):
    expected = seed_session.run("add:0")
    frozen = freeze_session(seed_session, ["add"])
    assert frozen.outputs == ["add:0"] and frozen.inputs == []
    assert frozen.variable_ops() == [] and frozen.kept_variables == []
    _, (y,) = _roundtrip(frozen, tmp_path / name, as_text, {})
    npt.assert_array_equal(y, expected)


@pytest.mark.parametrize("name,as_text", SUFFIXES)
def test_seed_graph_with_placeholder_roundtrip(seed_session_x, tmp_path, name, as_text):
    x = np.array([3.0, -0.5, 4.0], np.float32)
    expected_y, expected_add = seed_session_x.run(["y:0", "add:0"], {"x:0": x})
    frozen = freeze_session(seed_session_x, ["y:0", "add"], input_names=["x"])
    assert frozen.inputs == ["x:0"] and frozen.outputs == ["y:0", "add:0"]
    assert frozen.variable_ops() == []
    _, (y, add) = _roundtrip(frozen, tmp_path / name, as_text, {"x:0": x})
    npt.assert_array_equal(y, expected_y)
    npt.assert_array_equal(add, expected_add)


def test_seed_graph_exclude_and_keep(seed_session):
    excluded = freeze_session(seed_session, ["add"], exclude=["v1"])
    assert excluded.kept_variables == ["v1"]
    assert "v1" in excluded.variable_ops()
    nodes = {n.name: n.op for n in excluded.graph_def.node}
    assert nodes["v1"] == "VarHandleOp" and nodes["v2"] == "Const"

    kept = freeze_session(seed_session, ["add"], keep=["v1"])
    assert kept.kept_variables == ["v2"]
    assert "v2" in kept.variable_ops() and "v1" not in kept.variable_ops()

    with pytest.raises(ValueError, match="v3"):
        freeze_session(seed_session, ["add"], exclude=["v3"])


def test_seed_graph_bad_names(seed_session_x):
    with pytest.raises(ValueError, match="nope"):
        freeze_session(seed_session_x, ["nope"])
    with pytest.raises(ValueError, match="x:0"):  # no output depends on x: pruned away
        freeze_session(seed_session_x, ["add"], input_names=["x"])


# ---- the structural check ----------------------------------------------------------------------


def test_variable_ops_detects_unfrozen_graphs(keras_fn, seed_session):
    unfrozen = FrozenGraph(keras_fn.graph.as_graph_def(), ["x:0"], ["Identity:0"], [])
    ops = unfrozen.variable_ops()
    assert any("ReadVariableOp" in n for n in ops)
    tf1 = FrozenGraph(seed_session.graph.as_graph_def(), [], ["add:0"], [])
    assert {"v1", "v2", "add/ReadVariableOp"} <= set(tf1.variable_ops())


def test_variable_ops_follows_function_calls():
    graph_def = tf.compat.v1.GraphDef()
    outer = graph_def.library.function.add()
    outer.signature.name = "outer_fn"
    call = outer.node_def.add()
    call.name, call.op = "inner_call", "PartitionedCall"
    call.attr["f"].func.name = "inner_fn"
    inner = graph_def.library.function.add()
    inner.signature.name = "inner_fn"
    read = inner.node_def.add()
    read.name, read.op = "read", "ReadVariableOp"
    clean = graph_def.library.function.add()
    clean.signature.name = "clean_fn"
    ident = clean.node_def.add()
    ident.name, ident.op = "id", "Identity"
    for name, fn in [("call_outer", "outer_fn"), ("call_clean", "clean_fn")]:
        node = graph_def.node.add()
        node.name, node.op = name, "StatefulPartitionedCall"
        node.attr["f"].func.name = fn
    assert FrozenGraph(graph_def, [], [], []).variable_ops() == ["call_outer"]


# ---- size limit --------------------------------------------------------------------------------


def test_graph_too_large_is_refused_before_reading_values(keras_fn, monkeypatch, tmp_path):
    monkeypatch.setattr(size, "GRAPHDEF_LIMIT", 100)  # the Dense weights are 200 bytes

    def no_reads(*args, **kwargs):
        raise AssertionError("variable values read before the size check")

    monkeypatch.setattr(freeze_v2, "_as_numpy", no_reads)
    with pytest.raises(GraphTooLargeError) as info:
        freeze_function(keras_fn)
    message = str(info.value)
    assert "2 GiB" in message and "savedmodel" in message and "tf_checkpoint" in message
    assert info.value.limit == 100 and info.value.size > 100
    assert f"{info.value.size:,} bytes" in message
    assert isinstance(info.value, ValueError)


def test_graph_too_large_counts_only_frozen_values(keras_fn, monkeypatch):
    # the estimate is the graph's own size plus the frozen values: 200 bytes of weights, of
    # which d1/kernel (3 x 8 float32) is 96
    graph_bytes = size.estimate_graph_bytes(keras_fn.graph.as_graph_def())
    monkeypatch.setattr(size, "GRAPHDEF_LIMIT", graph_bytes + 150)
    with pytest.raises(GraphTooLargeError):
        freeze_function(keras_fn)
    frozen = freeze_function(keras_fn, exclude=["d1/kernel"])
    assert frozen.kept_variables == ["d1/kernel"]


def test_graph_too_large_session_and_write(seed_session, monkeypatch, tmp_path):
    frozen = freeze_session(seed_session, ["add"])
    monkeypatch.setattr(size, "GRAPHDEF_LIMIT", 4)  # two float32[1] variables: 8 bytes
    with pytest.raises(GraphTooLargeError, match="savedmodel"):
        freeze_session(seed_session, ["add"])
    path = tmp_path / "big.pb"
    with pytest.raises(GraphTooLargeError):
        frozen.write(path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_pb_check_of_a_graph_over_the_limit_fails_with_the_protobuf_message(pytester):
    # The 2 GiB limit, lowered: the same estimate a 2 GB model reaches, without allocating it.
    pytester.makepyfile(test_big=textwrap.dedent(
        """
        import keras
        import numpy as np
        from pytest_modelpersist.formats.pb import size

        def test_big(persist, monkeypatch):
            monkeypatch.setattr(size, "GRAPHDEF_LIMIT", 1000)  # the kernel alone is 1 KiB
            model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(16)])
            persist.check(model, np.ones((2, 16), "float32"), golden=False)
        """))
    result = pytester.runpytest("-p", "no:cacheprovider", "--persist-formats=pb")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*[[]pb[]]*more than one GraphDef can hold (1,000 bytes: "
                                 "protobuf refuses messages of 2 GiB or more)*"])
    result.stdout.fnmatch_lines(["*'savedmodel' or 'tf_checkpoint' format instead*"])


# ---- read_graph_def on bad files ---------------------------------------------------------------


@pytest.fixture
def good_pb(seed_session_x, tmp_path):
    return freeze_session(seed_session_x, ["y"], input_names=["x"]).write(tmp_path / "good.pb")


def test_read_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.pb"
    path.write_bytes(np.random.RandomState(0).bytes(4096))
    with pytest.raises(ValueError, match="garbage.pb"):
        read_graph_def(path)
    text = tmp_path / "words.pb"
    text.write_bytes(b"this is not a protobuf at all")
    with pytest.raises(ValueError, match="words.pb"):
        read_graph_def(text)


def test_read_empty_file(tmp_path):
    path = tmp_path / "empty.pb"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pb.*empty"):
        read_graph_def(path)


def test_read_truncated_file_at_every_length(good_pb, tmp_path):
    data = good_pb.read_bytes()
    path = tmp_path / "cut.pb"
    for n in range(1, len(data)):  # includes every cut at a node boundary
        path.write_bytes(data[:n])
        with pytest.raises(ValueError, match="cut.pb"):
            read_graph_def(path)


def test_read_bad_text(good_pb, tmp_path):
    path = tmp_path / "bad.pbtxt"
    path.write_text('node { name: "a" op: ')
    with pytest.raises(ValueError, match="bad.pbtxt"):
        read_graph_def(path)
    binary = tmp_path / "binary.pbtxt"
    binary.write_bytes(good_pb.read_bytes())
    with pytest.raises(ValueError, match="binary.pbtxt"):
        read_graph_def(binary)


def test_read_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_graph_def(tmp_path / "nope.pb")


# ---- run_graph_def -----------------------------------------------------------------------------


def test_run_graph_def_grappler_and_eager_state(keras_model, keras_fn):
    frozen = freeze_function(keras_fn)
    x = _x(seed=7)
    expected = keras_model(x, training=False).numpy()
    (fast,) = run_graph_def(frozen.graph_def, {"x": x}, ["Identity"])  # op names work too
    (full,) = run_graph_def(frozen.graph_def, {"x:0": x}, frozen.outputs, grappler=True)
    npt.assert_allclose(fast, expected, rtol=RTOL, atol=ATOL)
    npt.assert_allclose(full, expected, rtol=RTOL, atol=ATOL)
    assert tf.executing_eagerly()


def test_dtypes_and_captured_constants(tmp_path):
    """Variables of several dtypes (the one-copy tensor_content path and make_tensor_proto's)
    and captured eager constants all become constants with their exact values."""
    matrix = tf.constant(np.arange(12, dtype=np.float32).reshape(3, 4))
    words = tf.constant(["a", "bb"])
    strings = tf.Variable(["x", "yy"])
    ints = tf.Variable(np.arange(4, dtype=np.int64))
    bools = tf.Variable(np.array([True, False, True]))
    halves = tf.Variable(np.linspace(0, 1, 5).astype(np.float16))
    bfloats = tf.Variable(tf.constant([0.5, 1.5, -2.0, 3.25], tf.bfloat16))
    scalar = tf.Variable(2.5)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def f(x):
        return (
            tf.matmul(x, matrix) * scalar,
            tf.strings.join([words, strings]),
            ints * 2,
            tf.logical_not(bools),
            halves * 2,
            bfloats * 2,
        )

    x = _x(n=2, seed=8)
    expected = [t.numpy() for t in f(x)]
    frozen = freeze_function(f)
    assert frozen.variable_ops() == []
    _, got = _roundtrip(frozen, tmp_path / "dtypes.pb", False, {"x:0": x})
    for g, e in zip(got, expected, strict=True):
        npt.assert_array_equal(g, e)
