"""--persist-report: one real pytest run over real models, its HTML/Markdown/JSON and JUnit XML.

The run (a subprocess, once per module) holds every outcome: passes, a real mismatch (a model
counting its calls into its outputs), skips (a format that cannot hold the model), an xfail, a
setup error, and one input mistake failing identically in three formats.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pytest_modelpersist.reporting.writers import SCHEMA

import model_zoo

INNER = textwrap.dedent('''
    import numpy as np
    import pytest
    import tensorflow as tf
    import keras

    X = np.linspace(-1, 1, 24, dtype="float32").reshape(6, 4)

    def dense():
        keras.utils.set_random_seed(3)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")], name="m")

    class Noisy(tf.Module):
        """Counts its calls into its output: the restored copy (saved after one call) is off."""

        def __init__(self):
            self.calls = tf.Variable(0.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x):
            self.calls.assign_add(1.0)
            return x + self.calls * 1e-3 * x

    @pytest.mark.persist(golden=False)
    def test_dense(persist):
        persist.check(dense(), X, build=dense)

    @pytest.mark.persist(golden=False, formats=["savedmodel", "keras"])
    def test_noisy(persist):
        persist.check(Noisy(), X)

    @pytest.mark.xfail(reason="noise is expected here")
    @pytest.mark.persist(golden=False, formats=["savedmodel"])
    def test_noisy_known(persist):
        persist.check(Noisy(), X)

    @pytest.fixture
    def broken():
        raise RuntimeError("the fixture broke")

    @pytest.mark.persist(formats=["keras"])
    def test_setup_error(persist, broken):
        pass

    @pytest.mark.persist(golden=False)
    def test_wrong_inputs(persist):
        persist.check(dense(), np.ones((2, 3), "float32"), build=dense)
''')
FORMATS = "--persist-formats=keras,weights_h5,savedmodel"


def keras_label() -> str:
    """INNER's Keras models' kind label in the rows (Keras 2 where `keras` is, on TF 2.15)."""
    return "keras2" if model_zoo.keras_major() == 2 else "keras"


def wrong_inputs_cause() -> str:
    """The error INNER's wrong inputs raise, in the Keras version here."""
    if model_zoo.keras_major() == 2:
        return ('Input 0 of layer "m" is incompatible with the layer: expected shape=(None, 4), '
                "found shape=(2, 3)")
    return "Input 0 with name 'None' of layer 'd' is incompatible with the layer"


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in a fresh process on `directory`'s test_inner.py (CI unset: no golden guard)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--rootdir", str(directory), FORMATS, "--persist-loaders=inprocess", *args,
         "test_inner.py"],
        cwd=directory, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run writing r.html, r.md (two flags) and r.json (ini), plus JUnit XML."""
    directory = tmp_path_factory.mktemp("reported")
    (directory / "test_inner.py").write_text(INNER)
    (directory / "pytest.ini").write_text("[pytest]\npersist_report = out/r.json\n")
    proc = run_pytest(directory, "--persist-report=r.html,r.md", "--persist-report=out/r.json",
                      "--junitxml=junit.xml", "-rA")
    rows = json.loads((directory / "out" / "r.json").read_text())
    return {"dir": directory, "proc": proc, "doc": rows,
            "rows": {r["nodeid"].split("::")[-1]: r for r in rows["rows"]}}


def test_each_outcome_has_its_row(reported: dict[str, Any]) -> None:
    outcomes = {k: r["outcome"] for k, r in reported["rows"].items()}
    assert outcomes == {
        "test_dense[keras]": "pass", "test_dense[weights_h5]": "pass",
        "test_dense[savedmodel]": "pass", "test_noisy[keras]": "skip",
        "test_noisy[savedmodel]": "fail", "test_noisy_known[savedmodel]": "xfail",
        "test_setup_error[keras]": "error", "test_wrong_inputs[keras]": "fail",
        "test_wrong_inputs[weights_h5]": "fail", "test_wrong_inputs[savedmodel]": "fail",
    }, reported["proc"].stdout[-3000:]
    assert reported["doc"]["counts"] == {"pass": 3, "fail": 4, "error": 1, "skip": 1,
                                         "xfail": 1}


def test_rows_carry_figures_and_reasons(reported: dict[str, Any]) -> None:
    rows = reported["rows"]
    ok = rows["test_dense[weights_h5]"]
    assert ok["model_kind"] == keras_label() and ok["artifact_bytes"] > 0
    assert ok["save_seconds"] > 0 and ok["restore_seconds"] > 0 and ok["run_seconds"] > 0
    assert ok["max_abs_diff"] == 0.0 and ok["outputs"][0]["ok"] is True
    noisy = rows["test_noisy[savedmodel]"]
    out = noisy["outputs"][0]
    assert not out["ok"] and out["atol"] == pytest.approx(1e-6) and out["max_abs"] > 1e-6
    assert sum(out["histogram"]["counts"]) == 24 and len(out["histogram"]["edges"]) == 21
    assert noisy["reason"].startswith("[savedmodel] restored outputs differ")
    assert "does not apply to tf.Module" in rows["test_noisy[keras]"]["reason"]
    assert rows["test_noisy_known[savedmodel]"]["reason"] == "noise is expected here"
    assert "the fixture broke" in rows["test_setup_error[keras]"]["message"]
    assert rows["test_dense[keras]"]["test"] == "test_inner.py::test_dense"


def test_json_validates_against_the_shipped_schema(reported: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(reported["doc"])
    broken = json.loads(json.dumps(reported["doc"]))
    broken["rows"][0]["outcome"] = "passed"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(broken)


def test_identical_causes_are_grouped_without_escape_codes(reported: dict[str, Any]) -> None:
    out = reported["proc"].stdout
    cause = f"3 items failed with the same cause: ValueError: {wrong_inputs_cause()}"
    assert cause in out, out[-3000:]
    message = reported["rows"]["test_wrong_inputs[keras]"]["message"]
    assert "\x1b[" not in message and "[1m" not in message and "[0m" not in message
    if model_zoo.keras_major() == 3:  # Keras 2 says it in one sentence, without the call
        assert "expected axis -1 of input shape to have value 4" in message
        assert "(in Sequential.call())" in message or "(in Dense.call())" in message


def test_markdown_has_the_matrix_and_collapsed_failures(reported: dict[str, Any]) -> None:
    text = (reported["dir"] / "r.md").read_text()
    assert "| test | `weights_h5`<br>inprocess | `keras`<br>inprocess | `savedmodel`<br>" in text
    assert "| `test_inner.py::test_dense` | ✅ | ✅ | ✅ |" in text
    assert text.count("<details>") == 5  # four failures and the error
    assert "max abs" in text and "rtol" in text


def test_junit_xml_carries_the_key_figures(reported: dict[str, Any]) -> None:
    tree = ET.parse(reported["dir"] / "junit.xml")
    case = next(c for c in tree.iter("testcase") if c.get("name") == "test_dense[weights_h5]")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["persist_format"] == "weights_h5" and props["persist_loader"] == "inprocess"
    assert float(props["persist_max_abs_diff"]) == 0.0 and int(props["persist_artifact_bytes"]) > 0
    assert "persist_outputs" not in props and "persist_index" not in props


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed: apt-get install -y chromium (Debian/Ubuntu)")
    return found


def render(html: Path, fragment: str, tmp_path: Path) -> str:
    """The DOM after the page's script ran, from headless Chromium (no network)."""
    proc = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--no-first-run", f"--user-data-dir={tmp_path}",
         "--virtual-time-budget=3000", "--dump-dom", html.as_uri() + fragment],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_html_matrix_renders_in_headless_chromium(reported: dict[str, Any],
                                                  tmp_path: Path) -> None:
    page = reported["dir"] / "r.html"
    assert "http" not in page.read_text().replace("http://www.w3.org/2000/svg", "")
    dom = render(page, "", tmp_path / "profile")
    assert 'data-rendered="1"' in dom  # the script ran to its end
    assert dom.count('<td class="cell ') == 10 and "10 of 10 cells shown" in dom
    assert '<option value="savedmodel">savedmodel</option>' in dom  # filters filled
    assert '<svg class="hist"' in dom  # the noisy model's histogram
    failed = render(page, "#outcome=fail", tmp_path / "profile2")
    assert "4 of 10 cells shown" in failed


@pytest.mark.heavy
def test_xdist_controller_merges_the_workers_rows(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    proc = run_pytest(tmp_path, "-n", "2", "--persist-report=r.json,r.md",
                      "--junitxml=junit.xml")
    assert "2 workers" in proc.stdout or "gw1" in proc.stdout, proc.stdout[-2000:]
    doc = json.loads((tmp_path / "r.json").read_text())
    assert len(doc["rows"]) == 10 and doc["counts"]["pass"] == 3, proc.stdout[-3000:]
    assert {r["outcome"] for r in doc["rows"]} == {"pass", "fail", "error", "skip", "xfail"}
    assert all(r["artifact_bytes"] for r in doc["rows"] if r["outcome"] == "pass")
    assert "3 items failed with the same cause" in proc.stdout
    assert "| `test_inner.py::test_dense` | ✅ | ✅ | ✅ |" in (tmp_path / "r.md").read_text()
    props = [p.get("name") for p in ET.parse(tmp_path / "junit.xml").iter("property")]
    assert "persist_artifact_bytes" in props and "persist_outputs" not in props


def test_unknown_report_extension_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a():\n    pass\n")
    result = pytester.runpytest("--persist-report=r.html,report.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--persist-report: cannot tell the kind of report from "
                                 "report.txt; end each path with one of .html, .md, .json*"])


def test_no_report_without_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a():\n    pass\n")
    assert pytester.runpytest().ret == 0
    assert not list(pytester.path.glob("*.html")) and not list(pytester.path.glob("*.json"))


def test_keras_config_left_out_of_the_message_is_in_the_report_details(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gated=textwrap.dedent('''
        import keras
        import numpy as np
        import pytest

        @keras.saving.register_keras_serializable(package="zoo")
        class Gated(keras.layers.Layer):
            def call(self, x):
                return x * keras.activations.sigmoid(x)

        @pytest.mark.persist(formats=["keras"], golden=False)
        def test_gated(persist):
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), Gated()])
            artifact = persist.save(model, inputs=np.ones((2, 4), "float32"))
            keras.saving.get_custom_objects().pop("zoo>Gated")  # as if never imported
            persist.restore(artifact)
    '''))
    result = pytester.runpytest("--persist-loaders=inprocess", "--persist-report=r.json")
    result.assert_outcomes(failed=1)
    row = json.loads((pytester.path / "r.json").read_text())["rows"][0]
    assert "Could not locate class 'Gated' (module 'test_gated', registered as 'zoo>Gated')" \
        in row["reason"]
    assert "Full object config" not in row["message"] and len(row["message"]) < 600
    assert row["details"].startswith("{'module': 'test_gated', 'class_name': 'Gated'")
