"""Untrusted graphs (issue 14): every graph the plugin executes is screened unless the test
opts in with @pytest.mark.persist(unsafe=True).

Each case builds the crafted file itself with real TensorFlow, restores it the way the plugin
does (in-process, fresh subprocess, C API), proves the effect does not happen (no file
written, no outside bytes read) and checks the message: the format, the file, the op type and
node name, and the opt-in. A positive control (unsafe=True) proves each crafted op is real.
"""

from __future__ import annotations

import os
import re
import shutil
import textwrap
import time
from pathlib import Path
from typing import Any

import crafted_graphs as crafted
import numpy as np
import pytest
from test_bad_input import FORMATS, assert_clear, failure

from pytest_modelpersist.models import as_output_list
from pytest_modelpersist.models import run as run_model
from pytest_modelpersist.persist import CheckOptions, Persist

import model_zoo

X = np.random.default_rng(14).standard_normal((3, 4)).astype(np.float32)
OPT_IN = "opt in for this test only: @pytest.mark.persist(unsafe=True)"


def persist(fmt: str, where: Path, *, unsafe: bool = False, timeout: float = 300.0,
            loader: str = "inprocess") -> Persist:
    return Persist(FORMATS[fmt](), tmp_path=where, loader=loader,
                   options=CheckOptions(safe_mode=not unsafe, timeout=timeout))


def refused(call: Any) -> str:
    """The message of the refusal `call()` raises (a pytest failure or a loader error)."""
    try:
        call()
    except pytest.fail.Exception as exc:
        return str(exc)
    except Exception as exc:  # LoaderError from a capi/subprocess run
        return f"{type(exc).__name__}: {exc}"
    raise AssertionError("the crafted file was not refused")


def assert_opted_in_run_has_the_effect(fmt: str, artifact: Any, where: Path,
                                       effect: Path) -> None:
    """Positive control: with unsafe=True the same file restores, runs, and the crafted op
    really touches the file system."""
    out = persist(fmt, where, unsafe=True).restore(artifact.directory)(X)
    np.testing.assert_array_equal(out[0], X * 2.0)
    assert effect.exists()


# ---- frozen pb: crafted ops the old screen missed, on every loader --------------------------


CASES = {
    "WriteFile": crafted.write_file,
    "DatasetToTFRecord": crafted.dataset_to_tfrecord,
    "DebugIdentity": crafted.debug_identity_v1,
    "PyFunc": crafted.py_func,
}


@pytest.mark.parametrize("op", list(CASES))
def test_pb_with_a_file_touching_op_is_refused_and_the_op_is_real(op, tmp_path):
    effect = tmp_path / "effect"
    # Held until the end: a py_func's callback lives in this process only while its graph does.
    model = crafted.graph_model(CASES[op](effect))
    artifact = persist("pb", tmp_path / "save").save(model, inputs=X)
    assert not effect.exists()
    message = failure(lambda: persist("pb", tmp_path / "safe").restore(artifact.directory))
    assert_clear(message, "pb", artifact.path, rf"\({op}\)")
    assert OPT_IN in message and not effect.exists()

    assert_opted_in_run_has_the_effect("pb", artifact, tmp_path / "unsafe", effect)
    del model


@pytest.mark.parametrize("loader", ["subprocess", "capi"])
def test_pb_loaders_outside_the_process_screen_too(loader, tmp_path):
    marker = tmp_path / "written"
    artifact = persist("pb", tmp_path / "save").save(
        crafted.graph_model(crafted.write_file(marker)), inputs=X)
    restored = persist("pb", tmp_path / "safe", loader=loader).restore(artifact.directory)
    message = refused(lambda: restored(X))
    assert "[pb] " in message and str(artifact.path) in message
    assert "WriteFile (WriteFile)" in message and OPT_IN in message
    assert not marker.exists()


def test_pb_table_from_another_file_reads_nothing(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("outside line one\nline two\n")
    artifact = persist("pb", tmp_path / "save").save(crafted.table_from_text_file(secret),
                                                     inputs=X)
    message = failure(lambda: persist("pb", tmp_path / "safe").restore(artifact.directory))
    assert_clear(message, "pb", artifact.path, r"\(InitializeTableFromTextFileV2\)")
    assert OPT_IN in message
    # positive control: with the opt-in the graph hands the other file's lines back
    y, leaked = persist("pb", tmp_path / "unsafe", unsafe=True).restore(artifact.directory)(X)
    assert list(leaked) == [len("outside line one"), len("line two")]


# ---- SavedModel: signatures, library functions, main_op --------------------------------------


def test_savedmodel_signature_writing_a_file_is_refused(tmp_path):
    marker = tmp_path / "written"
    artifact = persist("savedmodel", tmp_path / "save").save(
        crafted.graph_model(crafted.write_file(marker)), inputs=X)
    for loader in ("inprocess", "capi"):
        p = persist("savedmodel", tmp_path / f"safe-{loader}", loader=loader)
        message = refused(lambda p=p: p.restore(artifact.directory)(X))
        assert "[savedmodel] " in message and str(artifact.path) in message, message
        assert "WriteFile (WriteFile)" in message and OPT_IN in message
        assert not marker.exists()
    assert_opted_in_run_has_the_effect("savedmodel", artifact, tmp_path / "unsafe", marker)


def test_savedmodel_tf2_function_writing_a_file_is_refused(tmp_path):
    tf = model_zoo.import_tensorflow()
    marker = tmp_path / "written"

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x):
            tf.io.write_file(str(marker), "ran")
            return x * 2.0

    artifact = persist("savedmodel", tmp_path / "save").save(Writer(), inputs=X)
    assert not marker.exists()
    message = failure(lambda: persist("savedmodel", tmp_path / "safe").restore(
        artifact.directory)(X))
    assert_clear(message, "savedmodel", artifact.path, r"__inference.*/WriteFile \(WriteFile\)")
    assert OPT_IN in message and not marker.exists()


def savedmodel_with_main_op(tmp_path: Path, build: Any) -> Any:
    """A clean graph SavedModel re-exported with ``main_op = build(tf)``, an op the loader
    itself runs during ``tf.saved_model.load``; its artifact."""
    tf = model_zoo.import_tensorflow()
    clean = crafted.graph_model(lambda tf, x: tf.no_op())
    artifact = persist("savedmodel", tmp_path / "save").save(clean, inputs=X)
    shutil.rmtree(artifact.path)
    v1 = tf.compat.v1
    with clean.graph.as_default():
        main_op = build(tf)
        signature = v1.saved_model.signature_def_utils.predict_signature_def(
            {"x": clean.graph.get_tensor_by_name("x:0")},
            {"output_0": clean.graph.get_tensor_by_name("y:0")})
        builder = v1.saved_model.Builder(str(artifact.path))
        builder.add_meta_graph_and_variables(clean.session, ["serve"], main_op=main_op,
                                             signature_def_map={"serving_default": signature})
        builder.save()
    return artifact


def test_savedmodel_main_op_writing_during_restore_alone_is_refused(tmp_path):
    marker = tmp_path / "written-at-load"
    artifact = savedmodel_with_main_op(tmp_path, lambda tf: tf.io.write_file(str(marker), "ran"))
    message = failure(lambda: persist("savedmodel", tmp_path / "safe").restore(
        artifact.directory))
    assert_clear(message, "savedmodel", artifact.path, r"WriteFile \(WriteFile\)")
    assert OPT_IN in message and not marker.exists()
    persist("savedmodel", tmp_path / "unsafe", unsafe=True).restore(artifact.directory)
    assert marker.exists()  # restore() alone ran it


# ---- ckpt: the .meta graph, outputs and the saver's restore group ----------------------------


def test_ckpt_meta_whose_output_writes_a_file_is_refused(tmp_path):
    marker = tmp_path / "written"
    model = crafted.graph_model(crafted.write_file(marker), variable=True)
    artifact = persist("ckpt", tmp_path / "save").save(model, inputs=X)
    message = failure(lambda: persist("ckpt", tmp_path / "safe").restore(artifact.directory))
    assert_clear(message, "ckpt", ".meta", r"WriteFile \(WriteFile\)")
    assert OPT_IN in message and not marker.exists()
    assert_opted_in_run_has_the_effect("ckpt", artifact, tmp_path / "unsafe", marker)


def clean_ckpt_meta(tmp_path: Path) -> tuple[Any, Path, Any]:
    """A clean ckpt artifact, its .meta path and the parsed MetaGraphDef (to craft)."""
    from tensorflow.core.protobuf import meta_graph_pb2

    model = crafted.graph_model(lambda tf, x: tf.no_op(), variable=True)
    artifact = persist("ckpt", tmp_path / "save").save(model, inputs=X)
    (meta_path,) = artifact.directory.glob("*.meta")
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString(meta_path.read_bytes())
    return artifact, meta_path, meta


def test_ckpt_restore_group_holding_a_write_is_refused(tmp_path):
    tf = model_zoo.import_tensorflow()
    marker = tmp_path / "written-by-restore"
    artifact, meta_path, meta = clean_ckpt_meta(tmp_path)
    with tf.Graph().as_default() as g:  # the nodes of one WriteFile, added to the restore group
        tf.io.write_file(str(marker), "ran", name="evil")
    meta.graph_def.node.extend(g.as_graph_def().node)
    restore_all = next(n for n in meta.graph_def.node
                       if n.name == meta.saver_def.restore_op_name)
    restore_all.input.append("^evil")
    meta_path.write_bytes(meta.SerializeToString())

    message = failure(lambda: persist("ckpt", tmp_path / "safe").restore(artifact.directory))
    assert_clear(message, "ckpt", meta_path, r"evil \(WriteFile\)")
    assert OPT_IN in message and not marker.exists()
    persist("ckpt", tmp_path / "unsafe", unsafe=True).restore(artifact.directory)
    assert marker.exists()  # Saver.restore ran the group


def test_ordinary_artifacts_pass_the_screen(tmp_path):
    """The formats' own save/restore and asset ops are not refused."""
    model = model_zoo.randomize(model_zoo.functional())
    for fmt in ("savedmodel", "pb"):
        p = persist(fmt, tmp_path / fmt)
        artifact = p.save(model, inputs=X)
        np.testing.assert_allclose(p.restore(artifact.directory)(X)[0],
                                   as_output_list(run_model(model, X))[0], rtol=1e-5, atol=1e-6)
    graph = crafted.graph_model(lambda tf, x: tf.no_op(), variable=True)
    p = persist("ckpt", tmp_path / "ckpt")
    np.testing.assert_array_equal(p.restore(p.save(graph, inputs=X).directory)(X)[0], X * 2.0)


# ---- freezing leaves no unreachable node ------------------------------------------------------


def test_freezing_drops_a_write_no_output_depends_on(tmp_path):
    tf = model_zoo.import_tensorflow()
    from pytest_modelpersist.formats import pb

    marker = tmp_path / "orphan"

    def fn(x):
        tf.io.write_file(str(marker), "ran")  # wrap_function adds no control edge to it
        return x * 2.0

    wrapped = tf.compat.v1.wrap_function(fn, [tf.TensorSpec([None, 4], tf.float32)])
    assert any(n.op == "WriteFile" for n in wrapped.graph.as_graph_def().node)
    frozen = pb.freeze_function(wrapped)
    assert pb.unsafe_ops(frozen.graph_def) == []
    nodes = {n.name: n for n in frozen.graph_def.node}
    from pytest_modelpersist.formats.pb.names import ancestors, op_name
    assert set(nodes) == ancestors(nodes, [op_name(o) for o in frozen.outputs + frozen.inputs])
    out = pb.run_graph_def(frozen.graph_def, {frozen.inputs[0]: X}, frozen.outputs)
    np.testing.assert_array_equal(out[0], X * 2.0)
    assert not marker.exists()


# ---- in-process hang: the persist timeout reaches Session.run and eager calls -----------


@pytest.mark.parametrize("fmt", ["pb", "ckpt", "savedmodel"])
def test_a_graph_blocking_forever_fails_at_the_timeout(fmt, tmp_path):
    """Session.run carries TensorFlow's deadline; a SavedModel signature (an eager function
    call) is cancelled at the deadline."""
    model = crafted.graph_model(crafted.dequeue_forever(), variable=fmt == "ckpt")
    artifact = persist(fmt, tmp_path / "save").save(model, inputs=X)
    message = failure(lambda: persist(fmt, tmp_path / "safe").restore(artifact.directory))
    assert re.search(r"QueueDequeueV2|FIFOQueueV2", message) and OPT_IN in message

    opted_in = persist(fmt, tmp_path / "unsafe", unsafe=True, timeout=1.5)
    restored = opted_in.restore(artifact.directory)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not finish within the persist timeout \(1.5 s\)"):
        restored(X)
    assert time.monotonic() - start < 30


def test_a_savedmodel_whose_main_op_blocks_fails_at_the_timeout(tmp_path):
    """tf.saved_model.load runs the main_op itself: the load is cancelled at the deadline."""
    artifact = savedmodel_with_main_op(tmp_path, lambda tf: tf.group(
        tf.queue.FIFOQueue(1, tf.float32, shapes=[()]).dequeue()))
    message = failure(lambda: persist("savedmodel", tmp_path / "safe").restore(
        artifact.directory))
    assert re.search(r"QueueDequeueV2|FIFOQueueV2", message) and OPT_IN in message

    opted_in = persist("savedmodel", tmp_path / "unsafe", unsafe=True, timeout=1.5)
    start = time.monotonic()
    message = failure(lambda: opted_in.restore(artifact.directory))
    assert_clear(message, "savedmodel", artifact.path,
                 r"TimeoutError: the graph did not finish within the persist timeout \(1.5 s\)")
    assert time.monotonic() - start < 30


def _ctrl_c_as_in_a_terminal() -> None:
    """In the child before exec: SIGINT's default disposition, so Python raises
    KeyboardInterrupt on it. A suite started in the background (`make test &`, some CI
    runners) inherits SIGINT ignored, and a Python started with it ignored never raises."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("fmt", ["pb", "savedmodel"])
@pytest.mark.heavy
def test_sigint_stops_an_in_process_hang(fmt, pytester):
    """Ctrl-C ends a test blocked in Session.run or in a SavedModel signature's eager call
    (not at its 600 s deadline)."""
    import signal
    import subprocess
    import sys

    pytester.makepyfile(test_hang=(
        "import numpy as np, pytest, crafted_graphs as crafted\n"
        f"@pytest.mark.persist(formats=[{fmt!r}], unsafe=True, golden=False, timeout=600)\n"
        "def test_hang(persist):\n"
        "    model = crafted.graph_model(crafted.dequeue_forever())\n"
        "    artifact = persist.save(model, inputs=np.ones((1, 4), np.float32))\n"
        "    print('RUNNING', flush=True)\n"
        "    persist.restore(artifact)(np.ones((1, 4), np.float32))\n"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider",
                             "-p", "no:xdist", str(pytester.path)], cwd=pytester.path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_ctrl_c_as_in_a_terminal)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "RUNNING" in line:
            break
    time.sleep(2.0)  # inside Session.run by now
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        rest = proc.communicate(timeout=180)[0]
    finally:
        proc.kill()
    # far below the 600 s deadline (pytest's teardown and TensorFlow's exit take a while on a
    # busy machine)
    assert time.monotonic() - start < 120
    assert "KeyboardInterrupt" in rest, rest


def test_ctrl_c_taken_by_another_thread_still_ends_the_wait():
    """The kernel may hand a process's SIGINT to any of its threads (TensorFlow runs many):
    the main thread, waiting for the blocked run, must still raise KeyboardInterrupt."""
    import subprocess
    import sys

    code = textwrap.dedent("""
        import signal, threading, time
        from pytest_modelpersist._session_run import _in_thread

        def interrupt_from_this_thread():
            time.sleep(0.5)
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)

        threading.Thread(target=interrupt_from_this_thread, daemon=True).start()
        start = time.monotonic()
        try:
            _in_thread(threading.Event().wait)  # blocks forever, like a dequeue
        except KeyboardInterrupt:
            print(f"INTERRUPTED after {time.monotonic() - start:.1f} s")
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30,  # before the fix: a wait that never ends
                         preexec_fn=_ctrl_c_as_in_a_terminal)
    assert "INTERRUPTED after 0." in out.stdout or "INTERRUPTED after 1." in out.stdout, (
        out.stdout + out.stderr)


def test_ckpt_restore_op_pointed_outside_the_artifact_is_refused(tmp_path):
    """The saver's own RestoreV2 is let through only while the loader names its file."""
    secret = tmp_path / "elsewhere"
    artifact, meta_path, meta = clean_ckpt_meta(tmp_path)
    restore = next(n for n in meta.graph_def.node if n.op == "RestoreV2")
    const = meta.graph_def.node.add(name="elsewhere_prefix", op="Const")
    const.attr["dtype"].type = 7  # DT_STRING
    const.attr["value"].tensor.dtype = 7
    const.attr["value"].tensor.string_val.append(str(secret).encode())
    restore.input[0] = "elsewhere_prefix"
    meta_path.write_bytes(meta.SerializeToString())
    message = failure(lambda: persist("ckpt", tmp_path / "safe").restore(artifact.directory))
    assert_clear(message, "ckpt", meta_path, rf"{restore.name} \(RestoreV2\)")
    assert OPT_IN in message
