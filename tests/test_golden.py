"""Goldens: the whole lifecycle with pytester, file safety, and xdist concurrency."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pytest_modelpersist import golden as gf

# A deterministic TF1 graph model whose weights come from the module's constants, so a test
# can "change the model" by rewriting the file.
MODEL_TEST = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    from pytest_modelpersist import GraphModel

    V1, V2 = {v1}, 2.0

    def build(v1=1.0, v2=0.0):
        g = tf.Graph()
        with g.as_default():
            a = tf.compat.v1.Variable([v1], name="v1")
            b = tf.compat.v1.Variable([v2], name="v2")
            x = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
            y = tf.multiply(tf.add(a, b), x, name="y")
            init = tf.compat.v1.global_variables_initializer()
        s = tf.compat.v1.Session(graph=g)
        s.run(init)
        return GraphModel(s, inputs=[x], outputs=[y])

    def test_model(persist):
        persist.check(build(V1, V2), np.array([[1.0], [2.0]], np.float32), build=build)
    {extra}
    """
)


def write_model_test(pytester: pytest.Pytester, v1: float = 1.0, extra: str = "") -> None:
    pytester.makepyfile(test_lifecycle=MODEL_TEST.format(v1=v1, extra=extra))


def goldens(pytester: pytest.Pytester) -> list[Path]:
    return sorted((pytester.path / "goldens").rglob("*.golden.json"))


def test_golden_lifecycle(pytester):
    args = ("-p", "no:cacheprovider", "--persist-formats=ckpt,pb")
    extra = ("def test_second(persist):\n"
             "        persist.check(build(5.0), np.ones((1, 1), np.float32))")
    write_model_test(pytester, extra=extra)

    # 1. missing: fails with the path and the command that records it
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines([
        "*[[]ckpt[]] golden missing: */goldens/test_lifecycle/test_model.golden.json",
        'record it with: pytest "test_lifecycle.py::test_model[[]ckpt[]]" --update-golden',
    ])

    # 2. --update-golden records once per test (shared by its format items) and passes
    result = pytester.runpytest(*args, "--update-golden")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["goldens: 2 recorded, 0 updated, 0 unused"])
    assert [p.name for p in goldens(pytester)] == ["test_model.golden.json",
                                                  "test_second.golden.json"]
    doc = json.loads(goldens(pytester)[0].read_text())
    assert doc["test"] == "test_lifecycle.py::test_model"
    assert doc["outputs"]["output_0"]["shape"] == [2, 1]
    assert doc["recorded_with"]["tensorflow"] and "tf32" in doc["recorded_with"]

    # 3. plain run passes
    pytester.runpytest(*args).assert_outcomes(passed=4)

    # 4. the model changes: the report says what differs and how to accept it
    write_model_test(pytester, v1=1.5, extra=extra)
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=2, passed=2)
    result.stdout.fnmatch_lines([
        "*[[]ckpt[]] the original model's outputs differ from the golden "
        "*test_model.golden.json:",
        "output_0: expected float32[[]2, 1[]], tolerance rtol=1e-05, atol=1e-06",
        "  mismatched elements: 2 of 2 (100%)",
        "  max abs difference: 1   max rel difference: 0.166667",
        "  worst element at (1, 0): expected 6.0, got 7.0",
        "the inputs are the ones the golden was recorded with: the model*changed",
        'to accept the new outputs: pytest "test_lifecycle.py::test_model[[]ckpt[]]" '
        "--update-golden",
    ])

    # 5. update rewrites it, then a plain run passes
    result = pytester.runpytest(*args, "--update-golden")
    result.stdout.fnmatch_lines(["goldens: 0 recorded, 1 updated, 0 unused"])
    pytester.runpytest(*args).assert_outcomes(passed=4)
    assert len(list((pytester.path / "goldens").rglob("*.npz"))) == 2  # old arrays removed

    # 6. a partial run (-k) never reports goldens of tests it did not collect
    result = pytester.runpytest(*args, "-k", "test_model")
    result.stdout.fnmatch_lines(["goldens: 0 recorded, 0 updated, 0 unused"])
    result = pytester.runpytest(*args, "test_lifecycle.py::test_model")
    result.stdout.fnmatch_lines(["goldens: 0 recorded, 0 updated, 0 unused"])

    # 7. test removed: reported unused; removal needs the explicit option
    write_model_test(pytester, v1=1.5)
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["goldens: 0 recorded, 0 updated, 1 unused",
                                 "unused goldens*--remove-unused-goldens*",
                                 "*test_second.golden.json"])
    assert len(goldens(pytester)) == 2
    result = pytester.runpytest(*args, "--remove-unused-goldens")
    result.stdout.fnmatch_lines(["goldens: 0 recorded, 0 updated, 1 unused, 2 files removed"])
    assert [p.name for p in goldens(pytester)] == ["test_model.golden.json"]
    assert len(list((pytester.path / "goldens").rglob("*.npz"))) == 1


def test_update_golden_is_refused_on_ci_without_opt_in(pytester, monkeypatch):
    write_model_test(pytester)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("--update-golden")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--update-golden refused: CI is set*"
                                 "--allow-update-golden-on-ci*"])
    result = pytester.runpytest("--update-golden", "--allow-update-golden-on-ci",
                                "--persist-formats=pb")
    result.assert_outcomes(passed=1)


def test_golden_dir_option_and_assert_golden_names(pytester):
    pytester.makepyfile(test_named=textwrap.dedent(
        """
        import numpy as np
        import pytest

        @pytest.mark.parametrize("case", ["a/../../b", "ünï cødé", "x" * 300])
        @pytest.mark.persist(formats=["pb"])
        def test_many(persist, case):
            persist.assert_golden(np.arange(3.0), inputs=np.zeros(1))
            persist.assert_golden([np.ones(2, np.int32), np.zeros((2, 2))], name="extra")
            persist.assert_golden(np.arange(3.0), name="again")

        @pytest.mark.persist(formats=["pb"])
        def test_twice(persist):
            persist.assert_golden(np.arange(3.0), name="same")
            persist.assert_golden(np.arange(3.0), name="same")
        """
    ))
    result = pytester.runpytest("--golden-dir=store", "--update-golden")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*golden */store/test_named/test_twice--same.golden.json is "
                                 "already used by this test*"])
    store = pytester.path / "store"
    files = sorted(p for p in pytester.path.rglob("*") if p.is_file() and "store" in p.parts)
    assert files and all(store in p.parents for p in files)  # nothing escaped the golden dir
    assert all(len(p.name) < 120 for p in files)
    assert not (pytester.path / "goldens").exists()
    # 3 params x 3 goldens + test_twice's one
    assert len(list(store.rglob("*.golden.json"))) == 10
    pytester.runpytest("--golden-dir=store").assert_outcomes(passed=3, failed=1)


def test_dtype_drift_is_its_own_failure(pytester):
    pytester.makepyfile(test_drift=textwrap.dedent(
        """
        import os
        import numpy as np
        import pytest

        @pytest.mark.persist(formats=["pb"])
        def test_out(persist):
            dtype = os.environ.get("OUT_DTYPE", "float64")
            persist.assert_golden(np.linspace(0, 1, 5).astype(dtype))
        """
    ))
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    import os

    os.environ["OUT_DTYPE"] = "float32"
    try:
        result = pytester.runpytest()
    finally:
        del os.environ["OUT_DTYPE"]
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["output_0: expected float64[[]5[]]; dtype differs: expected "
                                 "float64, got float32"])


def test_inputs_changed_is_reported(pytester):
    pytester.makepyfile(test_inp=textwrap.dedent(
        """
        import os
        import numpy as np
        import pytest

        @pytest.mark.persist(formats=["pb"])
        def test_out(persist):
            x = np.full(3, float(os.environ.get("X", "1")))
            persist.assert_golden(x * 2, inputs=x)
        """
    ))
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    import os

    os.environ["X"] = "2"
    try:
        result = pytester.runpytest()
    finally:
        del os.environ["X"]
    result.stdout.fnmatch_lines(["the inputs changed since the golden was recorded*"])


# ---- file-level behaviour (no pytest run) -----------------------------------------------------


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b\\c", "..", "CON", "x" * 500,
                                  "test[ünïcødé-\u202e-\t]", "", "."])
def test_safe_name_stays_in_directory(tmp_path, name):
    path = gf.sidecar_path(tmp_path, name)
    assert path.parent == tmp_path
    assert len(path.name) <= gf.MAX_NAME + len(gf.SIDECAR_SUFFIX)
    assert path.name.isascii() and "/" not in path.name and ".." not in path.name
    assert path.name.split(".")[0].upper() != "CON"


def test_safe_name_keeps_distinct_ids_distinct():
    names = ["a/b", "a_b", "a?b", "x" * 200 + "1", "x" * 200 + "2"]
    assert len({gf.safe_name(n) for n in names}) == len(names)


def test_write_then_read_round_trip_and_content_addressing(tmp_path):
    arrays = [np.arange(6.0).reshape(2, 3), np.array([np.nan, np.inf, -1.0], np.float32)]
    sidecar = tmp_path / "t.golden.json"
    written = gf.write_golden(sidecar, arrays, names=["a", "b"], test="t.py::t", inputs_crc=None)
    back = gf.read_golden(sidecar)
    for want, got in zip(arrays, back.arrays, strict=True):
        np.testing.assert_array_equal(want, got)
    assert back.doc["outputs"]["b"]["nan"] == 1 and back.doc["outputs"]["b"]["inf"] == 1
    # same content -> same arrays file; the sidecar is replaced atomically, no temp files left
    again = gf.write_golden(sidecar, arrays, names=["a", "b"], test="t.py::t", inputs_crc=None)
    assert again.arrays_path == written.arrays_path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [sidecar.name, written.arrays_path.name])


def _digest(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.heavy
def test_xdist_update_golden_twice_keeps_every_golden_valid_and_identical(pytester):
    tests = "\n".join(
        f"def test_{i}(persist):\n    persist.check(build({i}.0), X, build=build)\n"
        for i in range(8)
    )
    pytester.makepyfile(test_many=MODEL_TEST.format(v1=1.0, extra="").replace(
        "def test_model", "def _unused") + "\nX = np.array([[1.0], [3.0]], np.float32)\n" + tests)
    args = ("-n", "2", "-p", "no:cacheprovider", "--persist-formats=ckpt,pb,savedmodel",
            "--update-golden")
    first = pytester.runpytest_subprocess(*args, timeout=600)
    first.assert_outcomes(passed=24)
    first.stdout.fnmatch_lines(["goldens: 8 recorded, 0 updated, 0 unused"])
    store = pytester.path / "goldens"
    before = _digest(store)
    assert len(before) == 16  # 8 sidecars + 8 arrays files, no temp files
    second = pytester.runpytest_subprocess(*args, timeout=600)
    second.assert_outcomes(passed=24)
    assert _digest(store) == before
    for sidecar in store.rglob("*.golden.json"):
        gf.read_golden(sidecar)
