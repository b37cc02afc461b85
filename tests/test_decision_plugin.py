"""Decision-level options and per-output tolerances through the call, the `persist` marker and
ini, on real conversions (tflite_dynamic), real restores (keras) and real goldens (h5).

Each option is shown changing the verdict both ways: a check that fails without it passes with
it, and a model that really decides differently still fails with it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent
RUN = ("--persist-loaders=inprocess", "-p", "no:randomly", "-p", "no:cacheprovider")

QUANTIZED = """
    import pytest
    from decision_models import X64, two_heads, wide_model

    FLOAT = dict(golden=False, rtol=1e-6, atol=1e-6)

    @pytest.mark.persist(**FLOAT)
    def test_float(persist):
        persist.check(wide_model(), X64)

    @pytest.mark.persist(**FLOAT, agreement="argmax")
    def test_argmax(persist):
        persist.check(wide_model(), X64)

    @pytest.mark.persist(**FLOAT)
    def test_top3_from_the_call(persist):
        persist.check(wide_model(), X64, top_k=3)

    @pytest.mark.persist(golden=False, rtol=5e-3, atol=5e-3)
    @pytest.mark.parametrize("share", [0.5, 0.05])
    def test_share(persist, share):
        persist.check(wide_model(), X64, max_mismatch_fraction=share)

    @pytest.mark.persist(golden=False)
    @pytest.mark.parametrize("tol", [5e-2, 1e-3])
    def test_per_output(persist, tol):
        persist.check(two_heads(), X64, rtol={"output_0": tol, "output_1": 1e-6},
                      atol={"output_0": tol, "output_1": 1e-6})

    @pytest.mark.persist(golden=False, rtol={"logits": 1e-4})
    def test_unknown_output(persist):
        persist.check(two_heads(), X64)
"""


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.syspathinsert(str(HERE))
    pytester.makepyfile(textwrap.dedent(source))
    return pytester.runpytest(*RUN, *args)


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    """test name -> PASSED/FAILED/ERROR, from -rA's short summary."""
    found = {}
    for line in result.outlines:
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR") and "::" in rest:
            found[rest.split("::", 1)[1].split(" ", 1)[0]] = word
    return found


def test_quantized_model_judged_by_decisions_shares_and_per_output(pytester):
    result = run(pytester, QUANTIZED, "--persist-formats=tflite_dynamic", "-rA")
    assert outcomes(result) == {
        "test_float[tflite_dynamic]": "FAILED",
        "test_argmax[tflite_dynamic]": "PASSED",
        "test_top3_from_the_call[tflite_dynamic]": "PASSED",
        "test_share[0.5-tflite_dynamic]": "PASSED",
        "test_share[0.05-tflite_dynamic]": "FAILED",
        "test_per_output[0.05-tflite_dynamic]": "PASSED",
        "test_per_output[0.001-tflite_dynamic]": "FAILED",
        "test_unknown_output[tflite_dynamic]": "FAILED",
    }, result.stdout.str()
    result.stdout.fnmatch_lines([
        "*[[]tflite_dynamic[]] restored outputs differ from the original model's*",
        "*output_0: FAILED: * of 80 elements (*) outside rtol=0.005, atol=0.005; at most 5.00% "
        "allowed (max_mismatch_fraction)",
    ])
    text = result.stdout.str()
    # the per-output tolerance: only output_0 is reported, at its own tolerance
    assert "output_0: expected float32[8, 10], tolerance rtol=0.001, atol=0.001" in text
    assert "output_1: expected" not in text
    assert ("[tflite_dynamic] per-output option: rtol={'logits': 0.0001} names no output "
            "'logits'; the outputs are output_0, output_1") in text
    # a quantized model compared at float tolerance is pointed at the decision options
    assert "compare decisions: @pytest.mark.persist(agreement='argmax')" in text


NESTED = """
    import pytest
    from decision_models import X64, nested_heads

    FLOAT = {"logits": 1e-6, "heads": 1e-6}  # "heads": a path prefix, both heads

    @pytest.mark.persist(golden=False, rtol=FLOAT, atol=FLOAT)
    def test_float(persist):
        persist.check(nested_heads(), X64)

    @pytest.mark.persist(golden=False, rtol=FLOAT, atol=FLOAT, agreement={"logits": "argmax"})
    def test_logits_by_decision(persist):
        persist.check(nested_heads(), X64)

    @pytest.mark.persist(golden=False, agreement={"heads/1": "argmax"}, rtol={"head": 1e-6})
    def test_typo(persist):
        persist.check(nested_heads(), X64)
"""


def test_per_output_options_go_by_the_paths_of_nested_outputs(pytester):
    result = run(pytester, NESTED, "--persist-formats=tflite_dynamic", "-rA")
    assert outcomes(result) == {"test_float[tflite_dynamic]": "FAILED",
                                "test_logits_by_decision[tflite_dynamic]": "PASSED",
                                "test_typo[tflite_dynamic]": "FAILED"}, result.stdout.str()
    text = result.stdout.str()
    # only the quantized output fails at float tolerance; the float heads pass at 1e-6
    assert "logits: expected float32[8, 10], tolerance rtol=1e-06, atol=1e-06" in text
    assert "heads/0: expected" not in text and "heads/1: expected" not in text
    # layers are held to the strictest per-output tolerance: the quantized Dense is named
    assert "first divergence in the converted model: layer 'dense" in text
    assert ("[tflite_dynamic] per-output option: rtol={'head': 1e-06} names no output 'head' "
            "(closest: heads"
            ) in text
    assert "the outputs are heads/0, heads/1, logits" in text


RESTORED = """
    import pytest
    from decision_models import flipping, X64

    X = X64[:, :8]

    @pytest.mark.persist(golden=False, agreement="argmax", min_agreement=0.5)
    def test_argmax(persist):
        persist.check(flipping(), X)

    @pytest.mark.persist(golden=False, top_k=2)
    def test_top2(persist):
        persist.check(flipping(), X)
"""


def test_a_restore_that_decides_differently_fails_the_decision_checks(pytester):
    result = run(pytester, RESTORED, "--persist-formats=keras")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*[[]keras[]] restored outputs differ from the original model's*",
        "*output_0: FAILED: argmax agreement 0.00% of rows; at least 50.00% required (rows that "
        "differ: 0, 1, 2, 3, 4 and 3 more)",
    ])
    result.stdout.fnmatch_lines(["*output_0: FAILED: top-2 set agreement *% of rows; at least "
                                 "100.00% required (rows that differ: *"])


GOLDEN = """
    import pytest
    from decision_models import X_CLASSES, classifier

    def test_plain(persist):
        persist.check(classifier(), X_CLASSES)

    @pytest.mark.persist(agreement="argmax", min_agreement=1.0)
    def test_argmax(persist):
        persist.check(classifier(), X_CLASSES)

    @pytest.mark.persist(agreement="argmax", min_agreement=0.5)
    def test_half(persist):
        persist.check(classifier(), X_CLASSES)
"""


def test_decision_options_judge_the_golden_comparison(pytester, monkeypatch):
    pytester.syspathinsert(str(HERE))
    pytester.makepyfile(textwrap.dedent(GOLDEN))
    formats = "--persist-formats=h5"
    pytester.runpytest(*RUN, formats, "--update-golden").assert_outcomes(passed=3)
    # every output moves by ~1e-3, no decision changes
    monkeypatch.setenv("PERSIST_VARIANT", "noise")
    result = pytester.runpytest(*RUN, formats, "-rA")
    assert outcomes(result) == {"test_plain[h5]": "FAILED", "test_argmax[h5]": "PASSED",
                                "test_half[h5]": "PASSED"}, result.stdout.str()
    result.stdout.fnmatch_lines(["*[[]h5[]] the original model's outputs differ from the golden*"])
    # classes 2 and 3 swapped: half the rows decide differently
    monkeypatch.setenv("PERSIST_VARIANT", "swap")
    result = pytester.runpytest(*RUN, formats, "-rA")
    assert outcomes(result) == {"test_plain[h5]": "FAILED", "test_argmax[h5]": "FAILED",
                                "test_half[h5]": "PASSED"}, result.stdout.str()
    result.stdout.fnmatch_lines([
        "*[[]h5[]] the original model's outputs differ from the golden*",
        "*output_0: FAILED: argmax agreement 50.00% of rows; at least 100.00% required (rows "
        "that differ: 2, 3, 6, 7)",
    ])
    # ini: the same decision for every check of the run, under the marker's (per option)
    pytester.makeini("[pytest]\npersist_decision =\n    agreement = argmax\n"
                     "    min_agreement = 0.5\n")
    result = pytester.runpytest(*RUN, formats, "-rA")
    assert outcomes(result) == {"test_plain[h5]": "PASSED", "test_argmax[h5]": "FAILED",
                                "test_half[h5]": "PASSED"}, result.stdout.str()


def test_bad_decision_values_in_the_call_and_ini(pytester):
    pytester.syspathinsert(str(HERE))
    pytester.makepyfile(textwrap.dedent("""
        from decision_models import X_CLASSES, classifier

        def test_a(persist):
            persist.check(classifier(), X_CLASSES, golden=False, top_k={"output_0": 0})
    """))
    result = pytester.runpytest(*RUN, "--persist-formats=h5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["[[]h5[]] persist.check: top_k={'output_0': 0}: 'output_0': "
                                 "top_k=0: a positive int"])
    assert "Traceback" not in result.stdout.str()
    pytester.makeini("[pytest]\npersist_decision = majority = 0.5\n")
    result = pytester.runpytest(*RUN, "--persist-formats=h5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini persist_decision: cannot read 'majority = 0.5'*option "
                                 "one of agreement, min_agreement, top_k, max_mismatch_fraction"])
