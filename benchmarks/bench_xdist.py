"""`-n 0` vs `-n 2` (pytest-xdist): a generated suite where tests dominate, and example_project.

    python benchmarks/bench_xdist.py [--repeat 3 --workers 2] [--skip-example] [--skip-generated]

Two suites, each run as ``python -m pytest -q -p no:cacheprovider -n 0`` and ``-n <workers>``
(fresh subprocesses, alternating, ``--repeat`` runs each), each with its own ``--junitxml``
report (whose per-test times, summed, show how much of the suite's work each setting does):

* **generated** (written to a temp dir): 8 named Keras models (MLPs and a small conv net,
  up to ~1 M parameters, built on first use) x the 7 built-in formats x 2 tests per model and
  format (batches 2 and 16: the same artifact key), in-process loader, ``golden=False``. A
  test's cost is its save (shared by the workers through the artifact cache), restores and
  comparisons, not the TensorFlow import. Goal: ``-n 2`` <= 0.65x of ``-n 0`` wall (issue 18).
* **example_project/** as it is: its session fixtures train models, once per worker
  (goal < 0.7: two workers on two cores, each paying its own TensorFlow import and training).

The outcome of every test id (passed / skipped / failed / error) must be the same in every
run; the wall times' medians give the ratio ``-n N`` / ``-n 0``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from goals import print_goal  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example_project"
GOAL = 0.7
GENERATED_GOAL = 0.65


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


GENERATED_CONFTEST = '''
import functools

import keras
import numpy as np
import pytest

# (width, depth) of the MLPs (3-12M parameters: saving, restoring and checking them, not
# starting workers, is what the suite spends its time on); the last model is a conv net.
# Every layer and model is named: an automatic name (dense_7) depends on what a worker built
# before, and names are part of the artifact key the workers share.
SPECS = [(2432, 2), (1856, 3), (1216, 4), (3072, 1), (1536, 3), (2176, 2), (928, 5), "conv"]


def _build(m):
    keras.utils.set_random_seed(m)
    spec = SPECS[m]
    if spec == "conv":
        layers = [keras.Input((32, 32, 3), name="x"),
                  keras.layers.Conv2D(64, 3, activation="relu", name="c1"),
                  keras.layers.Conv2D(128, 3, strides=2, activation="relu", name="c2"),
                  keras.layers.GlobalAveragePooling2D(name="pool"),
                  keras.layers.Dense(10, name="out")]
    else:
        width, depth = spec
        layers = [keras.Input((64,), name="x")]
        layers += [keras.layers.Dense(width, activation="relu", name=f"h{i}")
                   for i in range(depth)]
        layers.append(keras.layers.Dense(10, name="out"))
    return keras.Sequential(layers, name=f"model{m}")


@functools.lru_cache(maxsize=None)
def model(m):
    return _build(m)


def inputs(m, batch):
    shape = (32, 32, 3) if SPECS[m] == "conv" else (64,)
    return np.random.default_rng(m).standard_normal((batch, *shape)).astype("float32")


@pytest.fixture
def case():
    return model, _build, inputs
'''

GENERATED_TESTS = '''
import functools

import pytest


# batch varies slowest: the items of one artifact key are far apart in the run order, as
# in a suite whose tests of a model are in different modules (xdist hands items out in turn).
@pytest.mark.parametrize("m", range(8))
@pytest.mark.parametrize("batch", [2, 16])
def test_roundtrip(persist, case, m, batch):
    model, build, inputs = case
    persist.check(model(m), inputs(m, batch), build=functools.partial(build, m), golden=False)
'''


def write_generated(directory: Path) -> Path:
    """The generated suite (see the module docstring) in `directory`; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "conftest.py").write_text(GENERATED_CONFTEST)
    (directory / "test_generated.py").write_text(GENERATED_TESTS)
    (directory / "pytest.ini").write_text("[pytest]\n")
    return directory


def run_suite(cwd: Path, workers: int, junit: Path,
              extra: list[str]) -> tuple[float, float, dict[str, str], float, str]:
    """(wall s, CPU s of the pytest process tree, outcomes, sum of test times, summary)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers),
           f"--junitxml={junit}", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if not junit.exists():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"pytest -n {workers} wrote no report (exit {proc.returncode})")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    cache = [ln for ln in lines if ln.startswith("artifacts:")]
    found, test_time = outcomes(junit)
    return wall, cpu, found, test_time, "; ".join([lines[-1]] + cache if lines else [])


def measure(name: str, cwd: Path, workers: int, repeat: int, extra: list[str],
            goal: float, tmp: Path, one_save_goal: bool = False) -> bool:
    """Run one suite -n 0 / -n `workers` alternately, print the table and the goal's line;
    returns whether the goal was met with identical outcomes."""
    # Over 60 lines: one measurement, then its table; the pieces share many locals.
    settings = (0, workers)
    times: dict[int, list[float]] = {n: [] for n in settings}
    cpus: dict[int, list[float]] = {n: [] for n in settings}
    test_times: dict[int, list[float]] = {n: [] for n in settings}
    results: dict[int, list[dict[str, str]]] = {n: [] for n in settings}
    saved: dict[int, list[int]] = {n: [] for n in settings}  # "artifacts: N saved" per run
    loads: list[float] = []  # the machine's 1-minute load average after each run
    for r in range(repeat):
        order = settings if r % 2 == 0 else settings[::-1]
        for n in order:
            junit = tmp / f"{name}-n{n}-{r}.xml"
            wall, cpu, found, test_time, summary = run_suite(cwd, n, junit, extra)
            times[n].append(wall)
            cpus[n].append(cpu)
            test_times[n].append(test_time)
            results[n].append(found)
            count = re.search(r"artifacts: (\d+) saved", summary)
            saved[n].append(int(count[1]) if count else 0)
            print(f"{name} run {r + 1}/{repeat} -n {n}: {wall:.2f} s wall, {cpu:.1f} s CPU, "
                  f"tests' own time {test_time:.1f} s, load average {os.getloadavg()[0]:.1f} "
                  f"({summary})", file=sys.stderr)
            loads.append(os.getloadavg()[0])

    # Outcomes are compared within each round (-n 0 vs -n N run back to back), so an edit of
    # the project between rounds shows up as a changed test set, not as an xdist difference.
    differing: dict[str, set[str]] = {}
    for r in range(repeat):
        serial, parallel = results[0][r], results[workers][r]
        for test_id in set(serial) | set(parallel):
            if serial.get(test_id) != parallel.get(test_id):
                differing.setdefault(test_id, set()).add(
                    f"round {r + 1}: -n 0 {serial.get(test_id, 'absent')}, -n {workers} "
                    f"{parallel.get(test_id, 'absent')}")
    all_runs = [found for n in settings for found in results[n]]
    changed = any(set(found) != set(all_runs[0]) for found in all_runs)

    print(f"\n{name}: python -m pytest -q -p no:cacheprovider -n N {' '.join(extra)}; median "
          f"of {repeat} alternating fresh runs per setting\n")
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
    ratio = statistics.median(times[workers]) / statistics.median(times[0])
    cpu_ratio = statistics.median(cpus[workers]) / statistics.median(cpus[0])
    tt_ratio = statistics.median(test_times[workers]) / statistics.median(test_times[0])
    print(f"{'ratio':10s} {ratio:7.2f}x {'':>20s} {cpu_ratio:6.2f}x {tt_ratio:7.2f}x")
    same = not differing
    print(f"outcomes per test id, -n 0 vs -n {workers} in each round: "
          + ("identical" if same else "DIFFER: " + "; ".join(
              f"{t} ({', '.join(sorted(v))})" for t, v in sorted(differing.items())[:10])))
    if changed:
        print("WARNING: the set of tests changed between rounds (the project was edited while "
              "the benchmark ran): times of different rounds are not comparable")
    print(f"load average after the runs (2 cores here; above 2, other work shared them): "
          f"{min(loads):.1f} to {max(loads):.1f}")
    print()
    met = bool(print_goal(f"{name}: -n {workers} wall <= {goal}x -n 0, same outcomes",
                          f"{ratio:.2f}x (median of {repeat})", same and ratio <= goal))
    if not one_save_goal:
        return met
    # the shared artifact cache: the workers together save each key once, as -n 0 does (the
    # generated suite's keys do not depend on the order; example_project's fine-tuned models
    # do, so its count may differ by the order the tests ran in)
    one_save = saved[workers] == saved[0] and all(saved[0])
    print_goal(f"{name}: one save per artifact key over {workers} workers",
               f"saves -n 0 {saved[0]}, -n {workers} {saved[workers]}", one_save)
    return met and one_save


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting (>= 3)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-example", action="store_true")
    parser.add_argument("--skip-generated", action="store_true")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_xdist_") as tmp:
        if not args.skip_generated:
            suite = write_generated(Path(tmp) / "generated")
            measure("generated", suite, args.workers, args.repeat, args.pytest_args,
                    GENERATED_GOAL, Path(tmp), one_save_goal=True)
        if not args.skip_example:
            measure("example_project", EXAMPLE, args.workers, args.repeat, args.pytest_args,
                    GOAL, Path(tmp))
    print("\nCPU s: user + sys of pytest and its workers; tests s: the sum of the tests' own "
          "times (setup + call + teardown) from the junit report, over all workers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
