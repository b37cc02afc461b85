"""Subprocess-loader items against their in-process items, warm interpreters against cold starts.

    python benchmarks/bench_loaders.py [--repeat 2] [pytest args, e.g. tests/test_persistence.py]

Runs example_project's suite (``-n 0 --persist-loaders=inprocess,subprocess``) with warm
interpreters (the default) and with ``PERSIST_WARM_INTERPRETERS=0`` (every subprocess item
starts Python and imports TensorFlow), alternating, fresh processes. Per test, the median of
its ``[fmt-subprocess]`` items' times over its ``[fmt]`` (in-process) items' times from the
junit report (setup + call + teardown). Goal (issue 18): a subprocess item costs <= 2x its
in-process item. Outcomes must be the same in every run.
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

ITEM = re.compile(r"^(?P<test>.+)\[(?P<fmt>[a-z0-9_]+?)(?P<sub>-subprocess)?\]$")


def run(warm: bool, junit: Path, extra: list[str]) -> tuple[float, dict[str, float], dict]:
    """(wall s, item id -> s, item id -> outcome) of one example-project run."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PERSIST_WARM_INTERPRETERS": str(int(warm))}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
           "--persist-loaders=inprocess,subprocess", f"--junitxml={junit}", *extra]
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


def ratios(times: dict[str, float]) -> list[float]:
    """subprocess item / in-process item, per (test, format) that has both (both passed)."""
    inproc, sub = {}, {}
    for name, seconds in times.items():
        m = ITEM.match(name)
        if m:
            (sub if m["sub"] else inproc)[(m["test"], m["fmt"])] = seconds
    return [sub[k] / inproc[k] for k in sub if k in inproc and inproc[k] > 0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args, extra = parser.parse_known_args(argv)
    results: dict[bool, list[tuple[float, list[float]]]] = {True: [], False: []}
    outcomes: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_loaders_") as tmp:
        for r in range(args.repeat):
            for warm in ((True, False) if r % 2 == 0 else (False, True)):
                wall, times, found = run(warm, Path(tmp) / f"{warm}-{r}.xml", extra)
                passed = {k: v for k, v in times.items() if found[k] == "pass"}
                results[warm].append((wall, ratios(passed)))
                outcomes.append(found)
                print(f"run {r + 1} {'warm' if warm else 'cold'}: {wall:.1f} s wall, "
                      f"{len(times)} items", file=sys.stderr)
    same = all(o == outcomes[0] for o in outcomes)
    print("\nexample_project, -n 0, loaders inprocess+subprocess; per (test, format): "
          "subprocess item time / in-process item time (junit times)\n")
    print(f"{'setting':8s} {'wall s (median)':>16s} {'pairs':>6s} {'median ratio':>13s} "
          f"{'max ratio':>10s}  goal <= {GOAL}x")
    verdict = {}
    for warm in (True, False):
        walls = [w for w, _ in results[warm]]
        rs = [x for _, rr in results[warm] for x in rr]
        med = statistics.median(rs) if rs else float("nan")
        verdict[warm] = med <= GOAL
        print(f"{'warm' if warm else 'cold':8s} {statistics.median(walls):16.1f} {len(rs):6d} "
              f"{med:12.2f}x {max(rs, default=float('nan')):9.2f}x  "
              f"{'MET' if verdict[warm] else 'MISSED'}")
    print()
    for warm in (True, False):
        rs = [x for _, rr in results[warm] for x in rr]
        med = statistics.median(rs) if rs else float("nan")
        print_goal(f"{'warm' if warm else 'cold'} subprocess item <= {GOAL}x in-process item",
                   f"{med:.2f}x (median)", med <= GOAL)
    print_goal("outcomes identical in every run", str(same), same)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
