"""Plugin wiring with pytester: options, parametrization, ids, the marker, the format hook."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from toy_format import TOY_CONFTEST

BUILTIN = ["ckpt", "tf_checkpoint", "h5", "weights_h5", "keras", "savedmodel", "pb"]

def collected_ids(result: pytest.RunResult) -> list[str]:
    return [line.split("::", 1)[1] for line in result.outlines if "::" in line]


def test_every_builtin_format_is_an_item_with_its_id(pytester):
    pytester.makepyfile("def test_a(persist):\n    assert persist.format\n")
    result = pytester.runpytest("--collect-only", "-q")
    assert collected_ids(result) == [f"test_a[{f}]" for f in BUILTIN]


def test_persist_formats_option_selects_exactly_those(pytester):
    pytester.makepyfile("def test_a(persist):\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", "--persist-formats=ckpt,h5,pb")
    assert collected_ids(result) == ["test_a[ckpt]", "test_a[h5]", "test_a[pb]"]
    result = pytester.runpytest("--collect-only", "-q", "--persist-formats=all")
    assert len(collected_ids(result)) == len(BUILTIN)


def test_unknown_format_is_a_usage_error_listing_known_names(pytester):
    pytester.makepyfile("def test_a(persist):\n    pass\n")
    result = pytester.runpytest("--persist-formats=ckpt,nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--persist-formats: unknown persist format 'nope'; "
                                 "known formats: " + ", ".join(BUILTIN) + "*"])


def test_ini_option_sets_the_default_and_command_line_wins(pytester):
    pytester.makeini("[pytest]\npersist_formats = keras, savedmodel\n")
    pytester.makepyfile("def test_a(persist):\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q")
    assert collected_ids(result) == ["test_a[keras]", "test_a[savedmodel]"]
    result = pytester.runpytest("--collect-only", "-q", "--persist-formats=pb")
    assert collected_ids(result) == ["test_a[pb]"]


def test_bad_ini_format_is_a_usage_error(pytester):
    pytester.makeini("[pytest]\npersist_formats = keras, hdf9\n")
    pytester.makepyfile("def test_a(persist):\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option persist_formats: unknown persist format 'hdf9'*"])


def test_requested_through_another_fixture_and_with_other_params(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def saved(persist):
            return persist.format

        @pytest.mark.parametrize("n", [1, 2])
        def test_a(saved, n):
            pass

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest("--collect-only", "-q", "--persist-formats=h5,pb")
    assert collected_ids(result) == ["test_a[1-h5]", "test_a[1-pb]", "test_a[2-h5]",
                                     "test_a[2-pb]", "test_plain"]


def test_marker_narrows_and_excludes(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.persist(formats=["h5", "pb", "keras"])
        def test_only(persist):
            pass

        @pytest.mark.persist(exclude=["ckpt", "pb"])
        def test_exclude(persist):
            pass

        @pytest.mark.persist(formats="savedmodel")
        class TestClass:
            def test_in_class(self, persist):
                pass
        """
    )
    result = pytester.runpytest("--collect-only", "-q", "--persist-formats=ckpt,h5,pb")
    assert collected_ids(result) == ["test_only[h5]", "test_only[pb]", "test_exclude[h5]",
                                     "TestClass::test_in_class[no-format]"]
    result = pytester.runpytest("--collect-only", "-q")
    assert "TestClass::test_in_class[savedmodel]" in collected_ids(result)


def test_empty_intersection_is_skipped_with_a_reason(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.persist(formats=["keras"])
        def test_a(persist):
            pass
        """
    )
    result = pytester.runpytest("-rs", "--persist-formats=ckpt")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no persist format left: the command line selects ckpt and "
                                 "the marker narrows it to none*"])


@pytest.mark.parametrize("mark,expected", [
    ("@pytest.mark.persist(fromats=['h5'])", "*unknown keyword(s) fromats; allowed: formats*"),
    ("@pytest.mark.persist('h5')", "*takes keywords only*"),
    ("@pytest.mark.persist(formats=['h6'])", "*persist(formats=...): unknown persist format 'h6'*"),
])
def test_bad_marker_is_a_collection_error(pytester, mark, expected):
    pytester.makepyfile(f"import pytest\n\n{mark}\ndef test_a(persist):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([expected])


def test_marker_is_registered(pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.persist(formats=..., exclude=..., loaders=..., rtol=...*"])


def test_third_party_format_registered_from_conftest(pytester):
    pytester.makeconftest(TOY_CONFTEST)
    pytester.makepyfile(
        """
        import numpy as np
        import pytest
        from conftest import Doubler

        def test_toy(persist):
            persist.check(Doubler(3), np.arange(4.0), golden=False)

        @pytest.mark.persist(formats=["toy_json"])
        def test_marker_by_name(persist):
            assert persist.format == "toy_json"
        """
    )
    result = pytester.runpytest("-v", "--persist-formats=toy_json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_toy[[]toy_json[]] PASSED*"])
    # It joins the built-ins under 'all' and the error message lists it.
    result = pytester.runpytest("--persist-formats=nope")
    result.stderr.fnmatch_lines(["*known formats: *, pb, *onnx, toy_json*"])


def test_third_party_format_catches_a_broken_save(pytester):
    pytester.makeconftest(TOY_CONFTEST + textwrap.dedent(
        """
        class Lossy(JsonFormat):
            name = "toy_lossy"
            def save(self, model, directory, *, inputs):
                return super().save(Doubler(model.k + 1), directory, inputs=inputs)

        def pytest_modelpersist_register_formats(registry):
            registry.register(JsonFormat())
            registry.register(Lossy())
        """
    ))
    pytester.makepyfile(
        "import numpy as np\nfrom conftest import Doubler\n\n"
        "def test_toy(persist):\n    persist.check(Doubler(3), np.arange(4.0), golden=False)\n"
    )
    result = pytester.runpytest("--persist-formats=toy_json,toy_lossy")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*[[]toy_lossy[]] restored outputs differ from the original model's*",
        "*mismatched elements: 3 of 4 (75%)*",
    ])


def test_builtin_formats_skip_objects_they_cannot_hold_with_reason(pytester):
    pytester.makepyfile(
        "def test_a(persist):\n    persist.save(object())\n"
    )
    result = pytester.runpytest("-rs", "--persist-formats=h5,pb")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*[[]h5[]] does not apply to builtins.object object: "
                                 "h5 holds Keras models only*"])


def test_terminal_summary_table(pytester):
    pytester.makeconftest(TOY_CONFTEST)
    pytester.makepyfile(
        "import numpy as np\nfrom conftest import Doubler\n\n"
        "def test_toy(persist):\n    persist.check(Doubler(2), np.arange(3.0), golden=False)\n"
    )
    result = pytester.runpytest("--persist-formats=toy_json,h5")
    result.stdout.fnmatch_lines([
        "*modelpersist summary*",
        "format*passed*failed*skipped*",
        "h5 * 0 * 0 * 1*",
        "toy_json * 1 * 0 * 0*",
    ])


def test_missing_tensorflow_gives_one_clear_message(pytester, monkeypatch):
    import pytest_modelpersist._tf as tfmod

    monkeypatch.setattr(tfmod, "tensorflow_available", lambda: False)
    pytester.makepyfile("def test_a(persist):\n    pass\n")
    result = pytester.runpytest_inprocess("--persist-formats=h5")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*pytest-modelpersist needs TensorFlow*pip install*"])
    assert "Traceback" not in result.stdout.str()


def test_help_and_plugin_import_do_not_import_tensorflow(tmp_path):
    code = textwrap.dedent(
        """
        import sys, pytest
        import pytest_modelpersist, pytest_modelpersist.plugin
        rc = pytest.main(["--help"])
        print("TF_IMPORTED", "tensorflow" in sys.modules, "keras" in sys.modules, rc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert "--persist-formats=NAMES" in out.stdout
    assert "TF_IMPORTED False False 0" in out.stdout


def test_collecting_a_suite_that_uses_persist_does_not_import_tensorflow(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_a(persist):\n    pass\n")
    code = ("import sys, pytest\nrc = pytest.main(['--collect-only', '-q'])\n"
            "print('TF_IMPORTED', 'tensorflow' in sys.modules, rc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert "TF_IMPORTED False 0" in out.stdout, out.stdout + out.stderr


def test_a_test_comparing_plain_arrays_never_imports_tensorflow(tmp_path):
    """The persist fixture imports TensorFlow on the first call given a model, not on setup:
    an assert_golden of numpy arrays (and the xdist worker running it) never pays for it,
    while a save in the same session does import it."""
    (tmp_path / "test_x.py").write_text(textwrap.dedent("""
        import sys
        import numpy as np

        def test_plain(persist):
            persist.assert_golden(np.arange(3.0))
            assert "tensorflow" not in sys.modules

        def test_model(persist):
            persist.applies_to(object())
            assert "tensorflow" in sys.modules
        """))
    code = ("import sys, pytest\nrc = pytest.main(['-q', '-p', 'no:cacheprovider', "
            "'--persist-formats=pb', '--update-golden', 'test_x.py::test_plain'])\n"
            "print('TF_IMPORTED', 'tensorflow' in sys.modules, rc)\n"
            "rc = pytest.main(['-q', '-p', 'no:cacheprovider', '--persist-formats=pb'])\n"
            "print('TF_IMPORTED', 'tensorflow' in sys.modules, rc)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300, env=env)
    assert "TF_IMPORTED False 0" in out.stdout, out.stdout + out.stderr
    assert "TF_IMPORTED True 0" in out.stdout, out.stdout + out.stderr
