"""example_project's persistence suite with `-n 0` vs `-n 2` (pytest-xdist): outcomes and time.

    python benchmarks/bench_xdist.py [--repeat 3 --workers 2]

Runs ``python -m pytest -q -p no:cacheprovider -n 0`` and ``-n <workers>`` in
``example_project/`` (fresh subprocesses, alternating, ``--repeat`` runs each), each with its
own ``--junitxml`` report. The outcome of every test id (passed / skipped / failed / error) must
be the same in every run; the wall times' medians give the ratio ``-n 2`` / ``-n 0`` (goal
< 0.7: two workers on two cores, each paying its own TensorFlow import).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example_project"
GOAL = 0.7


def outcomes(junit: Path) -> dict[str, str]:
    """Test id -> passed/skipped/failed/error from a junit XML report."""
    found: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if "error" in kinds:
            outcome = "error"
        elif "failure" in kinds:
            outcome = "failed"
        elif "skipped" in kinds:
            outcome = "skipped"
        else:
            outcome = "passed"
        # a teardown error adds a second entry for the same id: the worst one stands
        if found.get(test_id) not in ("error", "failed"):
            found[test_id] = outcome
    return found


def run_suite(workers: int, junit: Path, extra: list[str]) -> tuple[float, dict[str, str], str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers),
           f"--junitxml={junit}", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=EXAMPLE, capture_output=True, text=True,
                          env={**os.environ})
    wall = time.perf_counter() - t0
    if not junit.exists():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"pytest -n {workers} wrote no report (exit {proc.returncode})")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return wall, outcomes(junit), (lines[-1] if lines else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting (>= 3)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)

    settings = (0, args.workers)
    times: dict[int, list[float]] = {n: [] for n in settings}
    results: dict[int, list[dict[str, str]]] = {n: [] for n in settings}
    summaries: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench_xdist_") as tmp:
        for r in range(args.repeat):
            order = settings if r % 2 == 0 else settings[::-1]
            for n in order:
                junit = Path(tmp) / f"n{n}-{r}.xml"
                wall, found, summary = run_suite(n, junit, args.pytest_args)
                times[n].append(wall)
                results[n].append(found)
                summaries[n] = summary
                print(f"run {r + 1}/{args.repeat} -n {n}: {wall:.2f} s  ({summary})",
                      file=sys.stderr)

    # Outcomes are compared within each round (-n 0 vs -n N run back to back), so an edit of
    # the project between rounds shows up as a changed test set, not as an xdist difference.
    differing: dict[str, set[str]] = {}
    for r in range(args.repeat):
        serial, parallel = results[0][r], results[args.workers][r]
        for test_id in set(serial) | set(parallel):
            if serial.get(test_id) != parallel.get(test_id):
                differing.setdefault(test_id, set()).add(
                    f"round {r + 1}: -n 0 {serial.get(test_id, 'absent')}, -n {args.workers} "
                    f"{parallel.get(test_id, 'absent')}")
    all_runs = [found for n in settings for found in results[n]]
    changed = any(set(found) != set(all_runs[0]) for found in all_runs)

    print(f"\nexample_project/: python -m pytest -q -p no:cacheprovider -n N; median of "
          f"{args.repeat} alternating fresh runs per setting\n")
    header = (f"{'setting':10s} {'wall s':>8s} {'runs (s)':>24s} {'passed':>7s} {'skipped':>8s} "
              f"{'failed':>7s} {'error':>6s} {'tests':>6s}")
    print(header)
    print("-" * len(header))
    for n in settings:
        counts = Counter(results[n][0].values())
        runs = ", ".join(f"{t:.1f}" for t in times[n])
        print(f"{'-n ' + str(n):10s} {statistics.median(times[n]):8.2f} {runs:>24s} "
              f"{counts['passed']:7d} {counts['skipped']:8d} {counts['failed']:7d} "
              f"{counts['error']:6d} {len(results[n][0]):6d}")
    ratio = statistics.median(times[args.workers]) / statistics.median(times[0])
    print(f"{'ratio':10s} {ratio:7.2f}x")
    print()
    same = not differing
    print(f"outcomes per test id, -n 0 vs -n {args.workers} in each round: "
          + ("identical" if same else "DIFFER: " + "; ".join(
              f"{t} ({', '.join(sorted(v))})" for t, v in sorted(differing.items())[:10])))
    if changed:
        print("WARNING: the set of tests changed between rounds (the project was edited while "
              "the benchmark ran): times of different rounds are not comparable")
    print(f"-n {args.workers} / -n 0 wall time: {ratio:.2f}x "
          f"({'meets' if ratio < GOAL else 'MISSES'} the < {GOAL} goal)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
