"""Subprocess- and runtime-loader items against their in-process items, warm against cold.

    python benchmarks/bench_loaders.py [--repeat 2] [--runtime LABEL=PYTHON | --no-runtime]
                                       [pytest args, e.g. tests/test_persistence.py]

Runs example_project's suite (``-n 0 --persist-loaders=inprocess,subprocess``) with warm
interpreters (the default) and with ``PERSIST_WARM_INTERPRETERS=0`` (every subprocess item
starts Python and imports TensorFlow), alternating, fresh processes. Per test, the median of
its ``[fmt-subprocess]`` items' times over its ``[fmt]`` (in-process) items' times from the
junit report (setup + call + teardown). The warm runs also select a runtime loader (another
interpreter, ``--persist-runtime``; by default ``tf215`` = the repository's ``.venv-tf215``
when ``make venv-tf215`` built it) and measure its ``[fmt-tf215]`` items the same way (the
cold runs leave it out: a cold runtime item is one more interpreter start, ~7 s, per item).
Goal (issue 18): a subprocess or runtime item costs <= 2x its in-process item. Outcomes must
be the same in every run of a setting.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example_project"
GOAL = 2.0
sys.path.insert(0, str(Path(__file__).resolve().parent))
from goals import print_goal  # noqa: E402

DEFAULT_RUNTIME = ROOT / ".venv-tf215" / "bin" / "python"
# test[fmt] (in-process) or test[fmt-LOADER] (subprocess, or a runtime's label)
ITEM = re.compile(r"^(?P<test>.+)\[(?P<fmt>[a-z0-9_]+?)(?:-(?P<loader>[a-z][a-z0-9_.]*))?\]$")


def run(warm: bool, junit: Path, extra: list[str],
        runtime: tuple[str, str] | None) -> tuple[float, dict[str, float], dict]:
    """(wall s, item id -> s, item id -> outcome) of one example-project run."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PERSIST_WARM_INTERPRETERS": str(int(warm))}
    loaders = "inprocess,subprocess" + (f",{runtime[0]}" if runtime else "")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
           f"--persist-loaders={loaders}", f"--junitxml={junit}", *extra]
    if runtime:
        cmd.append(f"--persist-runtime={runtime[0]}={runtime[1]}")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=EXAMPLE, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if not junit.exists():
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    times: dict[str, float] = {}
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        times[name] = float(case.get("time") or 0.0)
        kinds = {child.tag for child in case}
        outcomes[name] = next((k for k in ("error", "failure", "skipped") if k in kinds), "pass")
    return wall, times, outcomes


def ratios(times: dict[str, float], loader: str) -> list[float]:
    """`loader` item / in-process item, per (test, format) that has both (both passed)."""
    inproc, other = {}, {}
    for name, seconds in times.items():
        m = ITEM.match(name)
        if m and m["loader"] in (None, loader):
            (other if m["loader"] else inproc)[(m["test"], m["fmt"])] = seconds
    return [other[k] / inproc[k] for k in other if k in inproc and inproc[k] > 0]


FAILING_SAVE_CONFTEST = '''
from pathlib import Path

import keras
import numpy as np
import pytest
from pytest_modelpersist import BaseFormat

SAVES = Path(__file__).with_name("saves.txt")


class DiskFull(BaseFormat):
    name = "disk_full"
    kinds = frozenset({"keras", "keras2"})
    description = "a format whose save always fails (the disk is full)"

    def save(self, model, directory, *, inputs):
        with SAVES.open("a") as f:
            f.write("save\\n")
        raise OSError(28, "No space left on device", str(directory / "model.bin"))

    def restore(self, artifact, options):
        raise AssertionError("never reached: the save failed")


def pytest_modelpersist_register_formats(registry):
    registry.register(DiskFull())


@pytest.fixture(scope="session")
def model():
    return keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(2, name="d")])


@pytest.fixture
def inputs():
    return np.ones((2, 3), np.float32)
'''

FAILING_SAVE_TESTS = '''
import pytest


@pytest.mark.parametrize("i", range(3))
def test_shared(persist, model, inputs, i):
    persist.check(model, inputs, golden=False)
'''


def failed_save_attempts(tmp: Path) -> tuple[int, int]:
    """(save attempts, failed items) of a suite whose one format's save fails: 3 tests sharing
    a model x 2 loaders, 6 items of one artifact key. Goal: one attempt (a save that failed is
    not redone for the key's other items; each reports the failure from the cache)."""
    suite = tmp / "failing_save"
    suite.mkdir()
    (suite / "conftest.py").write_text(FAILING_SAVE_CONFTEST)
    (suite / "test_failing_save.py").write_text(FAILING_SAVE_TESTS)
    (suite / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--persist-formats=disk_full", "--persist-loaders=inprocess,subprocess"],
                          cwd=suite, capture_output=True, text=True, env=env)
    saves_file = suite / "saves.txt"
    attempts = len(saves_file.read_text().splitlines()) if saves_file.exists() else 0
    failed = re.search(r"(\d+) failed", proc.stdout)
    return attempts, int(failed[1]) if failed else 0


def runtime_option(args: argparse.Namespace) -> tuple[str, str] | None:
    """(label, python) of the runtime loader to measure, or None."""
    if args.no_runtime:
        return None
    if args.runtime:
        label, _, python = args.runtime.partition("=")
        return label, str(Path(python).resolve())
    return ("tf215", str(DEFAULT_RUNTIME)) if DEFAULT_RUNTIME.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--runtime", metavar="LABEL=PYTHON",
                        help="the runtime loader measured in the warm runs (default: "
                             "tf215=.venv-tf215/bin/python when it exists)")
    parser.add_argument("--no-runtime", action="store_true", help="measure no runtime loader")
    args, extra = parser.parse_known_args(argv)
    runtime = runtime_option(args)
    # (setting, loader) -> [(wall s, ratios of that run)]; the runtime only in warm runs
    results: dict[tuple[str, str], list[tuple[float, list[float]]]] = {}
    outcomes: dict[bool, list[dict]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="bench_loaders_") as tmp:
        for r in range(args.repeat):
            for warm in ((True, False) if r % 2 == 0 else (False, True)):
                wall, times, found = run(warm, Path(tmp) / f"{warm}-{r}.xml", extra,
                                         runtime if warm else None)
                passed = {k: v for k, v in times.items() if found[k] == "pass"}
                setting = "warm" if warm else "cold"
                loaders = ["subprocess"] + ([runtime[0]] if warm and runtime else [])
                for loader in loaders:
                    results.setdefault((setting, loader), []).append(
                        (wall, ratios(passed, loader)))
                outcomes[warm].append(found)
                print(f"run {r + 1} {setting}: {wall:.1f} s wall, {len(times)} items",
                      file=sys.stderr)
        same = all(o == found_list[0] for found_list in outcomes.values() for o in found_list)
        attempts, failed_items = failed_save_attempts(Path(tmp))
    print("\nexample_project, -n 0, loaders inprocess+subprocess (+ the runtime in warm runs); "
          "per (test, format): loader item time / in-process item time (junit times)\n")
    print(f"{'setting':8s} {'loader':12s} {'wall s (median)':>16s} {'pairs':>6s} "
          f"{'median ratio':>13s} {'max ratio':>10s}  goal <= {GOAL}x")
    medians = {}
    for (setting, loader), runs in results.items():
        rs = [x for _, rr in runs for x in rr]
        medians[setting, loader] = med = statistics.median(rs) if rs else float("nan")
        print(f"{setting:8s} {loader:12s} {statistics.median(w for w, _ in runs):16.1f} "
              f"{len(rs):6d} {med:12.2f}x {max(rs, default=float('nan')):9.2f}x  "
              f"{'MET' if med <= GOAL else 'MISSED'}")
    if runtime:
        print(f"runtime {runtime[0]} = {runtime[1]}")
    print()
    for (setting, loader), med in medians.items():
        print_goal(f"{setting} {loader} item <= {GOAL}x in-process item",
                   f"{med:.2f}x (median)" if med == med else "no pairs",
                   med <= GOAL if med == med else None)
    if not runtime:
        print_goal(f"warm runtime item <= {GOAL}x in-process item",
                   "no runtime (make venv-tf215)", None)
    print_goal("outcomes identical in every run of a setting", str(same), same)
    print_goal("a failed save is not redone for the key's other items",
               f"{attempts} save(s) for {failed_items} failed items",
               attempts == 1 and failed_items == 6)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
