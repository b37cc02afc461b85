"""Runtimes (issue 13): another interpreter as a loader, `[<format>-LABEL]` items.

Real child processes throughout. Interpreters made for the test are shell scripts running this
venv's Python with a module hidden (no pytest, no TensorFlow), as a runtime that lacks it would
be. The TensorFlow 2.15.1 cases need ``PERSIST_TEST_RUNTIME_TF215`` (a python with
tensorflow-cpu==2.15.1; `make test` sets it to ``.venv-tf215/bin/python`` when that venv
exists) and skip without it.
"""

from __future__ import annotations

import os
import stat
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import runtime_formats

from pytest_modelpersist.formats import BUILTIN_FORMATS
from pytest_modelpersist.loaders.runtime_ops import unregistered_ops_line
from pytest_modelpersist.loaders.runtimes import Runtime, parse_runtimes
from pytest_modelpersist.persist import CheckOptions, Persist

import model_zoo

FORMATS = {cls.name: cls for cls in BUILTIN_FORMATS}
TF215_ENV = "PERSIST_TEST_RUNTIME_TF215"
TESTS = str(Path(__file__).parent)
X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)


@pytest.fixture(scope="session")
def tf215() -> str:
    """The TF 2.15.1 interpreter named by PERSIST_TEST_RUNTIME_TF215 (skip when unset)."""
    python = os.environ.get(TF215_ENV, "")
    if not python:
        pytest.skip(f"{TF215_ENV} is not set: these cases need a python with "
                    "tensorflow-cpu==2.15.1 (make test sets it to .venv-tf215/bin/python)")
    assert os.access(python, os.X_OK), f"{TF215_ENV}={python} is not an executable file"
    return python


def hiding(tmp_path: Path, *modules: str) -> str:
    """An interpreter (a shell script) running this Python with `modules` not installed: their
    imports raise ModuleNotFoundError, as where they are absent."""
    shim = tmp_path / f"hide_{'_'.join(modules)}.py"
    shim.write_text(textwrap.dedent(f"""
        import runpy, sys

        class NotInstalled:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {set(modules)!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

        sys.meta_path.insert(0, NotInstalled())
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
    """))
    script = tmp_path / f"python_without_{'_'.join(modules)}"
    script.write_text(f'#!/bin/sh\n[ "$1" = "-I" ] && shift\n'
                      f'exec {sys.executable} -I {shim} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def persist_on(fmt: Any, tmp_path: Path, label: str, python: str, **options: Any) -> Persist:
    """A Persist whose restores run in the runtime `label` (`python`)."""
    fmt = FORMATS[fmt]() if isinstance(fmt, str) else fmt
    return Persist(fmt, tmp_path=tmp_path, loader=label,
                   options=CheckOptions(runtimes={label: Runtime(label, python)}, **options))


def message_of(call: Any) -> str:
    """The failure `call()` raises: a pytest failure, or a loader's error."""
    try:
        call()
    except pytest.fail.Exception as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - LoaderError from the child
        return f"{type(exc).__name__}: {exc}"
    raise AssertionError("no failure")


# ---- configuration --------------------------------------------------------------------


def test_runtime_lines_are_parsed_and_bad_ones_named(tmp_path):
    found = parse_runtimes(["tf215 = /opt/tf215/bin/python", "", "serving = venv/bin/python"],
                           root=tmp_path, source="ini persist_runtimes")
    assert found["tf215"].python == "/opt/tf215/bin/python"
    assert found["serving"].python == str(tmp_path / "venv/bin/python")  # from rootdir
    for line, why in [("tf215 /usr/bin/python", "cannot read 'tf215 /usr/bin/python'"),
                      ("2.15 = /x", "must be letters"), ("capi = /x", "built-in loader"),
                      ("tf-215 = /x", "must be letters")]:
        with pytest.raises(ValueError, match=why):
            parse_runtimes([line], root=tmp_path, source="ini persist_runtimes",
                           reserved=["inprocess", "subprocess", "capi"])
    with pytest.raises(ValueError, match="'a' is given twice"):
        parse_runtimes(["a = /x", "a = /y"], root=tmp_path, source="ini persist_runtimes")


def test_runtime_items_ids_and_selection(pytester):
    pytester.makeini(f"[pytest]\npersist_runtimes =\n    here = {sys.executable}\n")
    pytester.makepyfile(textwrap.dedent("""
        import pytest

        @pytest.mark.persist(xfail={"keras-here": "a key naming a runtime item is accepted"})
        def test_a(persist):
            pass
    """))
    result = pytester.runpytest("--collect-only", "-q", "--persist-loaders=inprocess,here")
    ids = [ln.split("::")[1] for ln in result.outlines if "::" in ln]
    # Every format the subprocess loader takes (not the weights-only ones), after inprocess.
    assert [i for i in ids if i.endswith("-here]")] == [
        "test_a[ckpt-here]", "test_a[h5-here]", "test_a[keras-here]", "test_a[savedmodel-here]",
        "test_a[pb-here]"]
    assert len(ids) == 12
    result = pytester.runpytest("--collect-only", "-q")  # not selected: no runtime item
    assert not [ln for ln in result.outlines if "-here]" in ln]
    result = pytester.runpytest("--collect-only", "-q", "--persist-loaders=all")
    assert sum("-here]" in ln for ln in result.outlines) == 5
    result = pytester.runpytest("--collect-only", "-q", "--persist-loaders=there")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown loader(s) there; known loaders: inprocess, "
                                 "subprocess, capi; runtimes: here*"])


@pytest.mark.parametrize("problem", ["missing", "not executable"])
def test_selected_runtime_that_cannot_start_is_a_usage_error(pytester, problem):
    python = pytester.path / "venv-gone" / "bin" / "python"
    if problem == "not executable":
        python = pytester.path / "python.txt"
        python.write_text("not a program\n")
    pytester.makeini(f"[pytest]\npersist_runtimes =\n    tf215 = {python}\n")
    pytester.makepyfile("def test_a(persist):\n    pass\n")
    result = pytester.runpytest("--persist-loaders=inprocess,tf215")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    why = "no such file" if problem == "missing" else "not executable"
    result.stderr.fnmatch_lines([f"*runtime tf215 ({python}): {why} (ini persist_runtimes); "
                                 "a runtime is a Python interpreter with TensorFlow*"])
    result = pytester.runpytest("--persist-formats=pb")  # configured but not selected: fine
    result.assert_outcomes(passed=1)


def test_command_line_runtime_adds_to_ini(pytester):
    pytester.makeini("[pytest]\npersist_runtimes =\n    a = /nowhere/python\n")
    pytester.makepyfile("def test_a(persist):\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", "--persist-formats=pb",
                                f"--persist-runtime=b={sys.executable}",
                                "--persist-loaders=b")
    assert [ln.split("::")[1] for ln in result.outlines if "::" in ln] == ["test_a[pb-b]"]
    result = pytester.runpytest("--persist-runtime=b", "--persist-loaders=b")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--persist-runtime: cannot read 'b'*"])


def test_report_rows_name_the_runtime(pytester):
    import json

    pytester.makeini(f"[pytest]\npersist_runtimes =\n    here = {sys.executable}\n")
    pytester.makepyfile("def test_a(persist):\n    pass\n")
    result = pytester.runpytest("--persist-formats=pb", "--persist-loaders=inprocess,here",
                                "--persist-report=r.json")
    result.assert_outcomes(passed=2)
    rows = json.loads((pytester.path / "r.json").read_text())["rows"]
    assert {r["loader"]: r["runtime"] for r in rows} == {"inprocess": "",
                                                         "here": f"here = {sys.executable}"}


# ---- the child: what it needs, what it refuses --------------------------------------------


@pytest.mark.parametrize("fmt", ["pb", "savedmodel", "keras"])
@pytest.mark.heavy
def test_runtime_child_needs_no_pytest(fmt, tmp_path):
    """A runtime without pytest (nor this plugin installed) restores; outputs are compared."""
    python = hiding(tmp_path, "pytest", "_pytest")
    persist = persist_on(fmt, tmp_path / "p", "bare", python)
    model = model_zoo.randomize(model_zoo.sequential())
    result = persist.check(model, X, build=model_zoo.sequential)
    assert result.restored[0].model is None  # nothing restored in this process
    assert "runtime bare" in result.restored[0].how


def test_runtime_without_tensorflow_fails_naming_label_and_path(tmp_path):
    python = hiding(tmp_path, "tensorflow", "keras")
    persist = persist_on("pb", tmp_path / "p", "notf", python)
    message = message_of(lambda: persist.check(model_zoo.randomize(model_zoo.sequential()), X))
    assert f"[pb] runtime notf ({python}) for " in message
    assert "this interpreter cannot run the plugin's loader" in message
    assert "RuntimeUnfit: ModuleNotFoundError: No module named 'tensorflow'" in message
    assert "runtime create notf" in message
    assert "Traceback" not in message


def test_runtime_whose_file_went_away_fails_cleanly(tmp_path):
    persist = persist_on("pb", tmp_path / "p", "gone", str(tmp_path / "gone" / "python"))
    message = message_of(lambda: persist.check(model_zoo.randomize(model_zoo.sequential()), X))
    assert message.startswith(f"[pb] runtime gone ({tmp_path}/gone/python): no such file")


@pytest.mark.parametrize("runtime", ["here", "tf215"])
def test_runtime_child_screens_graphs(runtime, tmp_path, request):
    import crafted_graphs as crafted

    python = sys.executable if runtime == "here" else request.getfixturevalue("tf215")
    marker = tmp_path / "written"
    model = crafted.graph_model(crafted.write_file(marker))
    artifact = Persist(FORMATS["pb"](), tmp_path=tmp_path / "save",
                       options=CheckOptions()).save(model, inputs=X)
    restored = persist_on("pb", tmp_path / "safe", runtime, python).restore(artifact.directory)
    message = message_of(lambda: restored(X))
    assert f"[pb] runtime {runtime} ({python}) for {artifact.path}" in message
    assert "UnsafeGraphError" in message and "WriteFile (WriteFile)" in message
    assert not marker.exists()


def test_unregistered_ops_are_listed_from_the_artifact_files(tmp_path):
    tf = model_zoo.import_tensorflow()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.node.add(name="x", op="Placeholder")
    graph_def.node.add(name="future", op="NotInThisTensorFlow", input=["x"])
    function = graph_def.library.function.add()
    function.signature.name = "fn"
    function.node_def.add(name="inner", op="AlsoMissing")
    (tmp_path / "model.pb").write_bytes(graph_def.SerializeToString())
    (tmp_path / "notes.pb").write_bytes(b"\xff not a graph")  # skipped, not an error
    line = unregistered_ops_line(tmp_path, tf.__version__)
    assert line == (f"UnregisteredOpError: TensorFlow {tf.__version__} does not register 2 "
                    "op(s) the artifact uses: AlsoMissing (model.pb: fn/inner); "
                    "NotInThisTensorFlow (model.pb: future)")
    assert unregistered_ops_line(tmp_path / "notes.pb", "x") is None


# ---- TensorFlow 2.15.1 as the runtime -------------------------------------------------


PASSING = """
import numpy as np
import keras

def build():
    inp = keras.Input((4,), name="x")
    h = keras.layers.Dense(5, activation="relu")(inp)
    return keras.Model(inp, keras.layers.Dense(2)(h))

def test_dense(persist):
    x = np.linspace(-1, 1, 12, dtype="float32").reshape(3, 4)
    persist.check(build(), x, build=build, golden=False)
"""


@pytest.mark.heavy
def test_tf215_runtime_restores_todays_savedmodel_and_pb(pytester, tf215):
    pytester.makeini(f"[pytest]\npersist_runtimes =\n    tf215 = {tf215}\n")
    pytester.makepyfile(test_serving=PASSING)
    result = pytester.runpytest("-v", "--persist-loaders=inprocess,tf215",
                                "--persist-formats=savedmodel,pb", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_dense[[]savedmodel-tf215[]] PASSED*",
                                 "*test_dense[[]pb-tf215[]] PASSED*"])


def test_tf215_restores_are_children_of_one_warm_interpreter_of_that_python(tf215, tmp_path):
    from pytest_modelpersist.loaders import warm

    if not warm.enabled():
        pytest.skip("no os.fork here, or PERSIST_WARM_INTERPRETERS=0")
    restored_by = []
    for run in ("first", "second"):
        persist = persist_on(runtime_formats.ParentNamingPb(), tmp_path / run, "tf215", tf215,
                             subprocess_path=(TESTS,))
        result = persist.check(model_zoo.randomize(model_zoo.sequential()), X, golden=False)
        restored_by.append([int(p) for p in
                            (result.artifact.directory / "restored-by").read_text().split()])
    server = warm._servers[("subprocess", tf215)]
    assert server.proc.poll() is None
    (first, first_parent), (second, second_parent) = restored_by
    assert first != second and first_parent == second_parent == server.proc.pid


def test_tf215_runtime_catches_a_broken_restore(tf215, tmp_path):
    persist = persist_on(runtime_formats.DoubledWeightsPb(), tmp_path, "tf215", tf215,
                         subprocess_path=(TESTS,))  # the child imports runtime_formats
    message = message_of(lambda: persist.check(model_zoo.randomize(model_zoo.sequential()), X))
    assert message.startswith("[pb] restored outputs differ"), message
    assert "max abs difference" in message


@pytest.mark.parametrize("fmt", ["pb", "savedmodel"])
def test_tf215_runtime_names_the_op_it_lacks(fmt, tf215, tmp_path):
    tf = model_zoo.import_tensorflow()
    if not hasattr(tf.io, "decode_webp"):
        pytest.skip(f"TensorFlow {tf.__version__} here has no DecodeWebP op to save")
    # base64 text, not the image bytes: numpy's fixed-width bytes drop trailing NULs.
    data = np.array(runtime_formats.base64.urlsafe_b64encode(runtime_formats.WEBP), object)
    persist = persist_on(fmt, tmp_path, "tf215", tf215)
    message = message_of(lambda: persist.check(runtime_formats.webp_thumbnails(), data))
    assert message.startswith(f"[{fmt}] runtime tf215 ({tf215}) for "), message
    assert ("restore failed in its interpreter (TensorFlow 2.15.1): UnregisteredOpError: "
            "TensorFlow 2.15.1 does not register 1 op(s) the artifact uses: DecodeWebP (") \
        in message
    assert f"saved with TensorFlow {tf.__version__}" in message


# ---- python -m pytest_modelpersist runtime create ------------------------------------------


def test_runtime_create_prints_its_steps_and_the_ini_line(tmp_path):
    import subprocess

    where = tmp_path / "tf215"
    proc = subprocess.run([sys.executable, "-m", "pytest_modelpersist", "runtime", "create",
                           "tf215", "--tensorflow", "2.15.1", "--dir", str(where), "--dry-run"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == [
        f"$ {sys.executable} -m venv {where}",
        f"$ {where}/bin/python -m pip install --quiet tensorflow-cpu==2.15.1 'numpy<2'"]
    assert f"persist_runtimes =\n    tf215 = {where}/bin/python\n" in proc.stdout
    assert not where.exists()  # a dry run makes nothing


def test_runtime_create_reuses_a_venv_with_that_tensorflow(tmp_path):
    import io

    from pytest_modelpersist.loaders.runtime_create import create_runtime, requirements_for

    tf = model_zoo.import_tensorflow()
    python = tmp_path / "here" / "bin" / "python"  # stands for a venv made earlier
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    out = io.StringIO()
    assert create_runtime("here", [], tensorflow=tf.__version__, directory=tmp_path / "here",
                          base_python=sys.executable, out=out) == 0
    assert out.getvalue().startswith(f"reusing {tmp_path}/here: TensorFlow {tf.__version__}\n")
    assert f"    here = {python}\n" in out.getvalue()
    assert requirements_for(None, ["tensorflow==2.14.0"]) == (
        ["tensorflow==2.14.0", "numpy<2"], "2.14.0")
    assert requirements_for("2.18.0", []) == (["tensorflow-cpu==2.18.0"], "2.18.0")
    for bad in [(None, ["numpy"]), ("latest", [])]:
        with pytest.raises(ValueError, match="name a TensorFlow|expected a version"):
            requirements_for(*bad)
    assert create_runtime("2bad", [], tensorflow="2.15.1", directory=None,
                          base_python=sys.executable, out=out) == 2
