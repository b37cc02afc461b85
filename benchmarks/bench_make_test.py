"""`make test` on a fresh clone: the README's test command, venvs included, against 10 minutes.

    python3 benchmarks/bench_make_test.py [--keep] [--ref HEAD]

Clones this repository's committed `--ref` into a temporary directory (nothing uncommitted, no
`.venv`: what CI gets), runs ``CI=true make test`` there with stdin closed, and prints its wall
time, the CPU time of everything it ran (user + sys), the pytest summary line of each leg and
the goal line (issue 18: <= 10 minutes on this 2-core machine with the version matrix). The
machine should be idle: other work on the two cores lengthens the wall time one for one.
Needs no venv of its own (any Python 3 runs it); takes 13-15 minutes here.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 600.0
sys.path.insert(0, str(Path(__file__).resolve().parent))
from goals import print_goal  # noqa: E402

# "1221 passed, 46 skipped, 15 xfailed in 412.33s (0:06:52)" and the like
SUMMARY = re.compile(r"^=*\s*(\d+ (?:passed|failed|error).*? in [\d.]+s.*?)\s*=*$")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="HEAD", help="the commit to clone (default HEAD)")
    parser.add_argument("--keep", action="store_true", help="keep the clone and its log")
    args = parser.parse_args(argv)
    ref = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.ref],
                         capture_output=True, text=True, check=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="bench_make_test_"))
    clone = tmp / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", ref], check=True)
    log = tmp / "make-test.log"
    env = {**os.environ, "CI": "true"}
    env.pop("VIRTUAL_ENV", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(["make", "test"], cwd=clone, stdin=subprocess.DEVNULL,
                              stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    legs = [m[1] for line in log.read_text(errors="replace").splitlines()
            if (m := SUMMARY.match(line.strip()))]
    print(f"make test on a fresh clone of {ref}: exit {code}, {wall / 60:.1f} min wall "
          f"({wall:.0f} s), {cpu / 60:.1f} CPU-min (user + sys), load average "
          f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after (2 cores)")
    for leg in legs:
        print(f"  {leg}")
    if args.keep:
        print(f"clone and log: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print_goal(f"make test on a fresh clone <= {GOAL_S / 60:.0f} min",
               f"{wall / 60:.1f} min, exit {code}", code == 0 and wall <= GOAL_S)
    return code


if __name__ == "__main__":
    sys.exit(main())
