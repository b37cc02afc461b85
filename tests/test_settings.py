"""The configuration object: options, ini and marker keywords parsed and type-checked once."""

from __future__ import annotations

import textwrap

import pytest

from pytest_modelpersist.compare import Tolerance
from pytest_modelpersist.loaders import parse_loaders
from pytest_modelpersist.settings import (
    MARKER_KEYWORDS,
    CheckOptions,
    parse_tolerances,
)


def test_parse_loaders_orders_and_rejects():
    assert parse_loaders("capi, inprocess", "x", error=ValueError) == ["inprocess", "capi"]
    assert parse_loaders(["all"], "x", error=ValueError) == ["inprocess", "subprocess", "capi"]
    with pytest.raises(ValueError, match="x: unknown loader.s. nope; known loaders: inprocess"):
        parse_loaders("inprocess,nope", "x", error=ValueError)
    with pytest.raises(ValueError, match=r"\(none\)"):
        parse_loaders(" , ", "x", error=ValueError)


def test_parse_tolerances():
    assert parse_tolerances(["float32 = 1e-4, 1e-5", "", " float16=0.1,0.2 "]) == {
        "float32": Tolerance(1e-4, 1e-5), "float16": Tolerance(0.1, 0.2)}
    with pytest.raises(pytest.UsageError, match="cannot read 'float32 = x'"):
        parse_tolerances(["float32 = x"])


def test_check_options_merge_only_given_values():
    base = CheckOptions(rtol=1e-3, timeout=5.0)
    merged = base.merged(rtol=None, atol=2.0, exact=None)
    assert (merged.rtol, merged.atol, merged.timeout, merged.exact) == (1e-3, 2.0, 5.0, False)


@pytest.mark.parametrize("option, value, message", [
    ("--persist-timeout", "0", "--persist-timeout: expected a number of seconds > 0, got 0.0"),
    ("--persist-loaders", "inproc", "--persist-loaders: unknown loader(s) inproc"),
    ("--persist-formats", ",", "--persist-formats selects no format"),
])
def test_bad_option_values_are_usage_errors(pytester, option, value, message):
    pytester.makepyfile("def test_a(persist):\n    pass\n")
    result = pytester.runpytest(f"{option}={value}", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_bad_ini_timeout_and_tolerances_are_usage_errors(pytester):
    pytester.makepyfile("def test_a(persist):\n    pass\n")
    pytester.makeini("[pytest]\npersist_timeout = soon\n")
    result = pytester.runpytest("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ini option persist_timeout: expected a number of seconds > 0, got 'soon'" in (
        result.stderr.str())
    pytester.makeini("[pytest]\npersist_tolerances =\n    float32 = 1e-4\n")
    result = pytester.runpytest("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


BAD_MARKERS = [
    ("unsafe", '"false"', "a bool (True or False), got str 'false'"),
    ("exact", "1", "a bool (True or False), got int 1"),
    ("golden", '"no"', "a bool (True or False), got str 'no'"),
    ("rtol", '"x"', "a finite number >= 0, or {output path: number}, got str 'x'"),
    ("atol", "-1.0", "a finite number >= 0, or {output path: number}, got float -1.0"),
    ("rtol", "float('nan')", "a finite number >= 0, or {output path: number}, got float nan"),
    ("rtol", "True", "a finite number >= 0, or {output path: number}, got bool True"),
    ("rtol", "{'logits': -1}", "a finite number >= 0, or {output path: number}, got dict "
                               "{'logits': -1}"),
    ("atol", "{1: 0.1}", "a finite number >= 0, or {output path: number}, got dict {1: 0.1}"),
    ("convert", "13", "a dict of converter options, {'opset': 13}, got int 13"),
    ("timeout", '"soon"', "a number of seconds > 0, got str 'soon'"),
    ("timeout", "0", "a number of seconds > 0, got int 0"),
    ("formats", "123", "a format name or a list of format names, got int 123"),
    ("exclude", "[1, 2]", "a format name or a list of format names, got list [1, 2]"),
    ("loaders", "{'a': 1}", "a loader name or a list of loader names, got dict {'a': 1}"),
]


BAD_DECISION_MARKERS = [
    ("top_k", "0", "top_k=0: a positive int"),
    ("top_k", "2.0", "top_k=2.0: a positive int"),
    ("agreement", "'vote'", "agreement='vote': known agreements are 'argmax'"),
    ("min_agreement", "{'logits': 2}", "'logits': min_agreement=2: a fraction between 0 and 1"),
    ("max_mismatch_fraction", "True", "max_mismatch_fraction=True: a fraction between 0 and 1"),
    ("agreement", "{3: 'argmax'}", "output names must be str, not 3"),
]
ALL_BAD = [(k, v, f"expected {e}") for k, v, e in BAD_MARKERS] + BAD_DECISION_MARKERS


@pytest.mark.parametrize("keyword, value, expected", ALL_BAD,
                         ids=[f"{k}={v}" for k, v, _ in ALL_BAD])
def test_marker_values_are_type_checked_at_collection(pytester, keyword, value, expected):
    pytester.makepyfile(textwrap.dedent(f"""
        import pytest

        @pytest.mark.persist({keyword}={value})
        def test_a(persist):
            raise AssertionError("never runs")
    """))
    result = pytester.runpytest("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error, before any test
    assert f"test_a: @pytest.mark.persist({keyword}=" in result.stdout.str()
    assert f"): {expected}" in result.stdout.str()
    assert "Traceback" not in result.stdout.str() and "INTERNALERROR" not in result.stdout.str()


def test_valid_marker_values_collect(pytester):
    pytester.makepyfile(textwrap.dedent("""
        import pytest

        @pytest.mark.persist(formats="pb", exclude=(), loaders=["inprocess"], rtol=0, atol=1e-3,
                             exact=False, golden=True, unsafe=False, timeout=2.5,
                             max_shard_mb=64)
        def test_a(persist):
            pass

        @pytest.mark.persist(rtol={"logits": 1e-4, "heads/": 0}, atol={"logits": 1},
                             agreement="argmax", min_agreement=0.5, top_k={"logits": 3},
                             max_mismatch_fraction=0.01, convert={"opset": 13})
        def test_b(persist):
            pass
    """))
    result = pytester.runpytest("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert set(MARKER_KEYWORDS) == {"formats", "exclude", "loaders", "rtol", "atol", "exact",
                                    "golden", "unsafe", "timeout", "convert", "agreement",
                                    "min_agreement", "top_k", "max_mismatch_fraction", "xfail",
                                    "max_shard_mb"}
