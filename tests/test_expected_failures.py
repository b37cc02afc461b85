"""The marker's ``xfail`` keyword: known upstream bugs per format or format-loader item, strict."""

from __future__ import annotations

import textwrap

import pytest

from toy_format import TOY_CONFTEST

# A second toy format whose restore is wrong (the factor comes back off by one): a failure
# the plugin must report, standing in for a genuine upstream persistence bug.
BROKEN = TOY_CONFTEST + textwrap.dedent(
    """
    class OffByOne(JsonFormat):
        name = "toy_broken"

        def restore(self, artifact, options):
            model = Doubler(json.loads(artifact.path.read_text())["k"] + 1)
            return Restored(artifact, model, lambda args: [model(args[0])], how="json")

    def pytest_modelpersist_register_formats(registry):
        registry.register(JsonFormat())
        registry.register(OffByOne())
    """
)
FORMATS = "--persist-formats=toy_json,toy_broken"


def write_test(pytester: pytest.Pytester, xfail: object) -> None:
    pytester.makeconftest(BROKEN)
    pytester.makepyfile(textwrap.dedent(
        f"""
        import numpy as np
        import pytest
        from conftest import Doubler

        @pytest.mark.persist(xfail={xfail!r}, golden=False)
        def test_double(persist):
            persist.check(Doubler(3.0), np.arange(4.0))
        """))


@pytest.mark.parametrize("key", ["toy_broken", "toy_broken-inprocess"])
def test_a_format_known_to_fail_is_xfailed_with_its_reason(pytester, key):
    write_test(pytester, {key: "upstream#123: off by one"})
    result = pytester.runpytest(FORMATS, "-rx")
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*test_double[[]toy_broken[]]*[[]toy_broken[]] upstream#123: "
                                 "off by one*"])
    result.stdout.fnmatch_lines([  # the summary counts it as xfailed, not skipped
        "format * passed * failed * skipped * xfailed", "*",
        "toy_json * 1 * 0 * 0 * 0 *", "toy_broken * 0 * 0 * 0 * 1 *"])


def test_an_unexpected_pass_fails_the_test(pytester):
    write_test(pytester, {"toy_json": "fixed upstream since"})
    result = pytester.runpytest(FORMATS)
    result.assert_outcomes(failed=2)  # toy_json passed (strict XPASS), toy_broken failed
    result.stdout.fnmatch_lines(["*[[]XPASS(strict)[]]*fixed upstream since*"])


def test_without_the_keyword_the_broken_format_fails(pytester):
    write_test(pytester, None)
    pytester.runpytest(FORMATS).assert_outcomes(passed=1, failed=1)


@pytest.mark.parametrize(("xfail", "message"), [
    ({"h6": "typo"}, "*xfail=...): h6 name no format and no format-loader item "
                     "(formats: *toy_broken*; loaders: inprocess, subprocess, capi)*"),
    ({"toy_broken-gpu": "x"}, "*xfail=...): toy_broken-gpu name no format*"),
    ("toy_broken", "*persist(xfail='toy_broken'): expected a dict*"),
    ({"toy_broken": ""}, "*persist(xfail={'toy_broken': ''}): expected a dict*"),
])
def test_a_bad_xfail_value_fails_collection_naming_the_choices(pytester, xfail, message):
    write_test(pytester, xfail)
    result = pytester.runpytest(FORMATS)
    assert result.ret != 0
    result.stdout.fnmatch_lines([message])


def test_the_map_may_come_from_a_param_and_a_bad_one_errors_that_item_only(pytester):
    pytester.makeconftest(BROKEN)
    pytester.makepyfile(textwrap.dedent(
        """
        import numpy as np
        import pytest
        from conftest import Doubler

        @pytest.mark.parametrize("k", [
            pytest.param(3.0, marks=pytest.mark.persist(xfail={"toy_broken": "known"}), id="a"),
            pytest.param(5.0, marks=pytest.mark.persist(xfail={"h6": "typo"}), id="b"),
            pytest.param(4.0, id="c"),
        ])
        @pytest.mark.persist(golden=False)
        def test_double(persist, k):
            persist.check(Doubler(k), np.arange(4.0))
        """))
    result = pytester.runpytest(FORMATS, "-rxE")
    # a: json passes, broken xfails; b: both items error at setup; c: json passes, broken fails
    result.assert_outcomes(passed=2, xfailed=1, errors=2, failed=1)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_double[[]b-toy_json[]]*",
                                 "*test_double[[]b-toy_json[]]: *(xfail=...): h6 name no format*"])
