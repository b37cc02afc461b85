"""example_project's persistence suite with `-n 0` vs `-n 2` (pytest-xdist): outcomes and time.

    python benchmarks/bench_xdist.py [--repeat 3 --workers 2]

Runs ``python -m pytest -q -p no:cacheprovider -n 0`` and ``-n <workers>`` in
``example_project/`` (fresh subprocesses, alternating, ``--repeat`` runs each), each with its
own ``--junitxml`` report (whose per-test times, summed, show how much of the suite's work
each setting does: session fixtures run once per worker). The outcome of every test id (passed / skipped / failed / error) must
be the same in every run; the wall times' medians give the ratio ``-n 2`` / ``-n 0`` (goal
< 0.7: two workers on two cores, each paying its own TensorFlow import).
"""

from __future__ import annotations

import argparse
import os
import resource
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


def outcomes(junit: Path) -> tuple[dict[str, str], float]:
    """Test id -> passed/skipped/failed/error from a junit XML report, and the sum of the
    tests' own times (setup + call + teardown, summed over workers)."""
    found: dict[str, str] = {}
    total = 0.0
    for case in ET.parse(junit).getroot().iter("testcase"):
        total += float(case.get("time") or 0.0)
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
    return found, total


def run_suite(workers: int, junit: Path,
              extra: list[str]) -> tuple[float, float, dict[str, str], float, str]:
    """(wall s, CPU s of the pytest process tree, outcomes, sum of test times, summary)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers),
           f"--junitxml={junit}", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=EXAMPLE, capture_output=True, text=True,
                          env={**os.environ})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if not junit.exists():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"pytest -n {workers} wrote no report (exit {proc.returncode})")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    found, test_time = outcomes(junit)
    return wall, cpu, found, test_time, (lines[-1] if lines else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting (>= 3)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)

    settings = (0, args.workers)
    times: dict[int, list[float]] = {n: [] for n in settings}
    cpus: dict[int, list[float]] = {n: [] for n in settings}
    test_times: dict[int, list[float]] = {n: [] for n in settings}
    results: dict[int, list[dict[str, str]]] = {n: [] for n in settings}
    summaries: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench_xdist_") as tmp:
        for r in range(args.repeat):
            order = settings if r % 2 == 0 else settings[::-1]
            for n in order:
                junit = Path(tmp) / f"n{n}-{r}.xml"
                wall, cpu, found, test_time, summary = run_suite(n, junit, args.pytest_args)
                times[n].append(wall)
                cpus[n].append(cpu)
                test_times[n].append(test_time)
                results[n].append(found)
                summaries[n] = summary
                print(f"run {r + 1}/{args.repeat} -n {n}: {wall:.2f} s wall, {cpu:.1f} s CPU, "
                      f"tests' own time {test_time:.1f} s  ({summary})",
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
    header = (f"{'setting':10s} {'wall s':>8s} {'runs (s)':>20s} {'CPU s':>7s} "
              f"{'tests s':>8s} {'passed':>7s} {'skipped':>8s} {'failed':>7s} {'error':>6s} "
              f"{'tests':>6s}")
    print(header)
    print("-" * len(header))
    for n in settings:
        counts = Counter(results[n][0].values())
        runs = ", ".join(f"{t:.1f}" for t in times[n])
        print(f"{'-n ' + str(n):10s} {statistics.median(times[n]):8.2f} {runs:>20s} "
              f"{statistics.median(cpus[n]):7.1f} {statistics.median(test_times[n]):8.1f} "
              f"{counts['passed']:7d} {counts['skipped']:8d} {counts['failed']:7d} "
              f"{counts['error']:6d} {len(results[n][0]):6d}")
    ratio = statistics.median(times[args.workers]) / statistics.median(times[0])
    cpu_ratio = statistics.median(cpus[args.workers]) / statistics.median(cpus[0])
    tt_ratio = statistics.median(test_times[args.workers]) / statistics.median(test_times[0])
    print(f"{'ratio':10s} {ratio:7.2f}x {'':>20s} {cpu_ratio:6.2f}x {tt_ratio:7.2f}x")
    print("\nCPU s: user + sys of pytest and its workers; tests s: the sum of the tests' own "
          "times (setup + call + teardown) from the junit report, over all workers")
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
