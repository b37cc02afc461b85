"""report.py: comparison results and counts -> the text a user reads (no pytest run)."""

from __future__ import annotations

import numpy as np

from pytest_modelpersist.compare import Tolerance, compare_array, compare_outputs
from pytest_modelpersist.report import (
    cache_line,
    describe_mismatch,
    environment_notes,
    golden_lines,
    mismatch_report,
    outcome_table,
)


def test_mismatch_report_names_worst_element_nan_and_inf():
    exp = np.array([[1.0, 2.0], [np.nan, np.inf]], np.float32)
    act = np.array([[1.0, 2.5], [0.0, -np.inf]], np.float32)
    text = describe_mismatch(compare_array(exp, act, Tolerance(1e-5, 1e-6), name="y"))
    assert text.splitlines()[:4] == [
        "y: expected float32[2, 2], tolerance rtol=1e-05, atol=1e-06",
        "  mismatched elements: 3 of 4 (75%)",
        "  max abs difference: 0.5   max rel difference: 0.25",
        "  worst element at (0, 1): expected 2.0, got 2.5",
    ]
    assert "  NaN in only one side at: (1, 0)" in text
    assert "  Inf differs (sign or presence) at: (1, 1)" in text


def test_mismatch_report_empty_when_all_match_and_footer_kept():
    same = compare_outputs([np.ones(3)], [np.ones(3)])
    assert mismatch_report("title", same) == ""
    diff = compare_outputs([np.ones(3)], [np.ones(4)])
    text = mismatch_report("title", diff, footer=["a", "", "b"])
    assert text.splitlines() == ["title", "output_0: expected float64[3]; shape differs: "
                                 "expected (3,), got (4,)", "a", "b"]


def test_outcome_table_and_cache_line():
    assert outcome_table({"h5": {"passed": 2, "failed": 1}, "pb-capi": {"skipped": 3}}) == [
        "format   passed  failed  skipped",
        "-------  ------  ------  -------",
        "h5       2       1       0      ",
        "pb-capi  0       0       3      ",
    ]
    assert outcome_table({"h5": {"passed": 1, "xfailed": 2}})[0] == (
        "format  passed  failed  skipped  xfailed")
    assert cache_line({"h5": 1, "pb": 2}, {"pb": 5}) == (
        "artifacts: 3 saved, 5 reused from the session cache (h5 1+0, pb 2+5)")


def test_golden_lines_list_every_file_and_unreadable_causes():
    lines = golden_lines({"recorded": {"b", "a"}}, ["u"], {"s": "golden s: not a regular file"},
                         [])
    assert lines == [
        "goldens: 2 recorded, 0 updated, 1 unused, 1 unreadable",
        "  recorded: a", "  recorded: b",
        "unused goldens (their tests no longer exist; remove them with "
        "--remove-unused-goldens):",
        "  u",
        "unreadable goldens (never removed; fix them, or re-record them with --update-golden):",
        "  golden s: not a regular file",
    ]
    assert golden_lines({}, ["u"], {}, ["u", "v"]) == [
        "goldens: 0 recorded, 0 updated, 1 unused, 2 files removed"]


def test_environment_notes():
    cpu = {"device": "CPU: x", "tensorflow": "2.21.0", "numpy": "2.4"}
    gpu = {"device": "GPU: H100", "tf32": True, "tensorflow": "2.20.0", "numpy": "2.4"}
    notes = environment_notes(gpu, cpu)
    assert len(notes) == 3 and "another device: GPU: H100" in notes[0]
    assert "TF32" in notes[1] and notes[2].endswith("tensorflow 2.20.0 -> 2.21.0")
    assert environment_notes(cpu, cpu) == []
