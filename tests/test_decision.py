"""Decision-level checks (pure numpy): argmax and top-k agreement, mismatch fractions, options
per output path."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_modelpersist.compare import Tolerance, compare_array
from pytest_modelpersist.decision import (
    DecisionPolicy,
    argmax_agreement,
    decisions,
    judge,
    per_output,
    top_k_agreement,
)

TOL = Tolerance(rtol=1e-5, atol=1e-6)


def verdict(expected, actual, **policy):
    comparison = compare_array(expected, actual, TOL, name="logits")
    return judge(comparison, expected, actual, DecisionPolicy(**policy))


def test_decisions_argmax_and_threshold():
    np.testing.assert_array_equal(decisions([[0.1, 0.9], [0.8, 0.2]]), [1, 0])
    # one score per row (sigmoid): thresholded
    np.testing.assert_array_equal(decisions([[0.7], [0.2]]), [1, 0])
    np.testing.assert_array_equal(decisions([0.7, 0.2], threshold=0.1), [1, 1])


def test_argmax_agreement_counts_rows_and_names_the_ones_that_differ():
    e = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], np.float32)
    a = e.copy()
    a[2] = [0, 2, 1]
    fraction, rows = argmax_agreement(e, a)
    assert fraction == 0.75
    assert rows.tolist() == [2]


def test_top_k_is_a_set_per_row():
    e = np.array([[5, 4, 3, 2, 1], [1, 2, 3, 4, 5]], np.float32)
    a = np.array([[4, 5, 3, 2, 1], [1, 6, 2, 4, 3]], np.float32)  # row 0: same top-3 set
    fraction, rows = top_k_agreement(e, a, 3)
    assert fraction == 0.5 and rows.tolist() == [1]
    assert top_k_agreement(e, a, 2)[0] == 0.5
    with pytest.raises(ValueError, match="top_k=6 but the output has 5 classes"):
        top_k_agreement(e, a, 6)


def test_argmax_agreement_passes_where_elementwise_fails():
    rng = np.random.default_rng(0)
    e = rng.standard_normal((50, 10)).astype(np.float32)
    e[np.arange(50), rng.integers(0, 10, 50)] += 5.0  # clear winners
    a = e + rng.normal(0, 0.05, e.shape).astype(np.float32)
    assert not verdict(e, a).ok  # elementwise
    result = verdict(e, a, agreement="argmax")
    assert result.ok, result.lines
    assert result.lines == ["ok: argmax agreement 100.00% of rows; at least 100.00% required"]


def test_min_agreement_allows_a_fraction_of_rows_to_flip():
    e = np.eye(4, dtype=np.float32)
    a = e.copy()
    a[3] = [0, 0, 1.5, 1]
    assert not verdict(e, a, agreement="argmax").ok
    result = verdict(e, a, agreement="argmax", min_agreement=0.75)
    assert result.ok
    assert "(rows that differ: 3)" in result.lines[0]


def test_max_mismatch_fraction_like_tf2onnx_ptol():
    e = np.zeros(100, np.float32)
    a = e.copy()
    a[:3] = 1.0
    assert not verdict(e, a, max_mismatch_fraction=0.02).ok
    result = verdict(e, a, max_mismatch_fraction=0.03)
    assert result.ok
    assert result.lines == ["ok: 3 of 100 elements (3.00%) outside rtol=1e-05, atol=1e-06; "
                            "at most 3.00% allowed (max_mismatch_fraction)"]
    # with a decision check too, both must hold
    assert not verdict(np.eye(3), np.eye(3) * 2, agreement="argmax",
                       max_mismatch_fraction=0.1).ok


def test_nan_and_shape_differences_fail_whatever_the_policy():
    e = np.eye(3, dtype=np.float32)
    a = e.copy()
    a[0, 1] = np.nan
    result = verdict(e, a, agreement="argmax", min_agreement=0.0)
    assert not result.ok and "NaN or infinity" in result.lines[0]
    result = verdict(e, np.eye(4, dtype=np.float32), agreement="argmax")
    assert not result.ok and "shape differs" in result.lines[0]


@pytest.mark.parametrize("bad, message", [
    ({"agreement": "vote"}, "known agreements are 'argmax'"),
    ({"min_agreement": 1.5}, "min_agreement=1.5: a fraction between 0 and 1"),
    ({"max_mismatch_fraction": True}, "a fraction between 0 and 1"),
    ({"top_k": 0}, "top_k=0: a positive int"),
    ({"top_k": 2.0}, "top_k=2.0: a positive int"),
])
def test_policy_refuses_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        DecisionPolicy(**bad)


def test_per_output_by_path():
    names = ["embedding", "logits"]
    assert per_output({"logits": 1e-4}, names, "rtol") == [None, 1e-4]
    assert per_output(1e-3, names, "rtol") == [1e-3, 1e-3]
    with pytest.raises(ValueError, match=r"names no output 'logit' \(closest: logits\); the "
                                         r"outputs are embedding, logits"):
        per_output({"logit": 1e-4}, names, "rtol")


def test_per_output_keys_are_paths_or_path_prefixes():
    # Nested outputs are named by path, as the mismatch report shows them.
    names = ["heads/0/score", "heads/1/score", "heads/10/score", "logits"]
    assert per_output({"heads": 1e-2}, names, "rtol") == [1e-2, 1e-2, 1e-2, None]
    # the longest matching key wins; "heads/1" is not a prefix of "heads/10/score"
    assert per_output({"heads/": 1e-2, "heads/1": 1e-3}, names, "rtol") == [
        1e-2, 1e-3, 1e-2, None]
    assert per_output({"heads/1/score": 0.5}, names, "atol") == [None, 0.5, None, None]
    with pytest.raises(ValueError, match=r"names no output 'head' \(closest: heads, "):
        per_output({"head": 1e-2}, names, "rtol")
    with pytest.raises(ValueError, match=r"names no output 'output_0'; the outputs are heads"):
        per_output({"output_0": 1e-2}, names, "rtol")


def test_judge_outputs_per_output_path():
    from pytest_modelpersist.decision import judge_outputs

    rng = np.random.default_rng(1)
    logits = rng.standard_normal((20, 5)).astype(np.float32)
    embedding = rng.standard_normal((20, 8)).astype(np.float32)
    noisy = [logits + 1e-5, embedding + 5e-3]
    names = ["logits", "embedding"]
    judged = judge_outputs([logits, embedding], noisy, names)
    assert not judged.ok and [c.name for c, _ in judged.failed()] == ["logits", "embedding"]
    judged = judge_outputs([logits, embedding], noisy, names,
                           rtol={"logits": 1e-4, "embedding": 1e-2},
                           atol={"logits": 1e-5, "embedding": 1e-2})
    assert judged.ok
    # a decision policy for one output only: the other keeps its elementwise check
    judged = judge_outputs([logits, embedding], noisy, names, rtol={"logits": 1e-4},
                           atol={"logits": 1e-5}, agreement={"embedding": "argmax"})
    assert judged.ok and judged.verdicts[0] is None and judged.verdicts[1].ok
    flipped = embedding.copy()
    flipped[0] = -flipped[0]
    judged = judge_outputs([logits, embedding], [logits, flipped], names,
                           agreement={"embedding": "argmax"})
    assert not judged.ok
    assert judged.decision_lines() == ["embedding: FAILED: argmax agreement 95.00% of rows; "
                                       "at least 100.00% required (rows that differ: 0)"]
    with pytest.raises(TypeError, match="unknown decision option"):
        judge_outputs([logits], [logits], ["logits"], majority=0.5)


def test_options_from_ini_and_marker_values_are_checked():
    from pytest_modelpersist.decision import check_option, parse_ini

    assert parse_ini(["agreement = argmax", "", "top_k = 5", "min_agreement = 0.99"]) == {
        "agreement": "argmax", "top_k": 5, "min_agreement": 0.99}
    with pytest.raises(ValueError, match="option one of agreement, min_agreement"):
        parse_ini(["majority = 0.5"])
    with pytest.raises(ValueError, match="'lots' is not a number"):
        parse_ini(["top_k = lots"])
    with pytest.raises(ValueError, match="a fraction between 0 and 1"):
        parse_ini(["max_mismatch_fraction = 2"])
    assert check_option("agreement", {"logits": "argmax"}) is None
    assert check_option("top_k", {"logits": 0}) == "'logits': top_k=0: a positive int"
