"""Collection overhead: 1,000 plain tests collected with the plugin vs with `-p no:modelpersist`.

    python benchmarks/bench_collection.py [--tests 1000 --modules 20 --repeat 7]

Generates ``--tests`` plain test functions (no ``persist`` fixture, no marker) spread over
``--modules`` modules in a temporary directory, then times ``pytest --collect-only -q
-p no:cacheprovider`` in a fresh subprocess, alternating plugin enabled (the installed
``pytest11`` entry point) and disabled (``-p no:modelpersist``, the floor), ``--repeat`` runs
each. Shown: the median wall time and the median CPU time (user + sys of the child, less
sensitive to a noisy machine than wall time), and their ratio plugin/floor.

A third, diagnostic variant (``floor+numpy``) is the floor plus a one-line plugin that imports
numpy: the plugin's package imports numpy at start-up, and this row shows how much of its
overhead that import is.

One more run of each variant loads a tiny probe plugin (``-p bench_collection_probe``) that
records, at the end of the session, whether ``tensorflow`` (or ``keras``) was imported and
whether the modelpersist plugin was active; TensorFlow must be imported in neither.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GOAL = 0.05  # plugin at most 5 % slower
sys.path.insert(0, str(Path(__file__).resolve().parent))
from goals import print_goal  # noqa: E402

VARIANTS = ("floor", "plugin", "floor+numpy")
LABELS = {
    "floor": "floor: -p no:modelpersist",
    "plugin": "plugin enabled (entry point)",
    "floor+numpy": "diagnostic: floor + import numpy",
}
DISABLE = ["-p", "no:modelpersist"]

PROBE = textwrap.dedent(
    """
    import json, os, sys

    def pytest_sessionfinish(session):
        pm = session.config.pluginmanager
        with open(os.environ["BENCH_COLLECTION_PROBE"], "w") as fh:
            json.dump({
                "tensorflow": "tensorflow" in sys.modules,
                "keras": "keras" in sys.modules,
                "plugin_active": pm.get_plugin("modelpersist") is not None,
                "collected": session.testscollected,
            }, fh)
    """
)


def make_project(root: Path, tests: int, modules: int) -> None:
    """Plain tests: a few shapes pytest users write (functions, parametrize, classes)."""
    per_module = -(-tests // modules)
    made = 0
    for m in range(modules):
        lines = ["import pytest", ""]
        n = min(per_module, tests - made)
        i = 0
        while i < n:
            kind = i % 10
            if kind == 8 and n - i >= 2:  # one parametrized function = 2 tests
                lines += ["@pytest.mark.parametrize('v', [1, 2])",
                          f"def test_param_{i}(v):", "    assert v > 0", ""]
                i += 2
                continue
            if kind == 9:  # a method in a class
                lines += [f"class TestThing{i}:", f"    def test_method_{i}(self):",
                          "        assert True", ""]
            else:
                lines += [f"def test_plain_{i}(tmp_path):" if kind == 0 else
                          f"def test_plain_{i}():", f"    assert {i} == {i}", ""]
            i += 1
        made += n
        (root / f"test_module_{m:03d}.py").write_text("\n".join(lines))
    (root / "bench_collection_probe.py").write_text(PROBE)
    (root / "bench_collection_numpy.py").write_text("import numpy  # noqa: F401\n")
    # the rootdir: keeps any enclosing project's config (and its ini options) out
    (root / "pytest.ini").write_text("[pytest]\n")


def run_collect(root: Path, variant: str, *, probe: Path | None = None) -> dict[str, float]:
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    if variant != "plugin":
        cmd += DISABLE
    if variant == "floor+numpy":
        cmd += ["-p", "bench_collection_numpy"]
    if probe is not None:
        cmd += ["-p", "bench_collection_probe"]
        env["BENCH_COLLECTION_PROBE"] = str(probe)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"pytest --collect-only ({variant}) failed (exit {proc.returncode})")
    last = [ln for ln in proc.stdout.splitlines() if ln.strip()][-1]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "summary": last}  # type: ignore[dict-item]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--modules", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7, help="runs per variant (>= 5)")
    args = parser.parse_args(argv)

    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    probes: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_collection_") as tmp:
        root = Path(tmp)
        make_project(root, args.tests, args.modules)
        for variant in VARIANTS:  # warm-up (page cache, .pyc files), untimed
            run_collect(root, variant)
        for r in range(args.repeat):
            order = VARIANTS[r % 3:] + VARIANTS[:r % 3]  # rotate who goes first
            for variant in order:
                result = run_collect(root, variant)
                runs[variant].append(result)
                print(f"run {r + 1}/{args.repeat} {variant:11s} wall {result['wall']:.3f} s "
                      f"cpu {result['cpu']:.3f} s  ({result['summary']})", file=sys.stderr)
        for variant in VARIANTS:
            out = root / f"probe_{variant}.json"
            run_collect(root, variant, probe=out)
            probes[variant] = json.loads(out.read_text())

    def med(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[variant])

    summary = runs["plugin"][-1]["summary"]
    print(f"\n{args.tests} plain tests in {args.modules} modules (`{summary}`); "
          f"pytest --collect-only -q, median of {args.repeat} interleaved fresh runs each\n")
    header = (f"{'variant':42s} {'wall s':>8s} {'cpu s':>8s} {'tensorflow imported':>20s} "
              f"{'keras imported':>15s}")
    print(header)
    print("-" * len(header))
    for variant in VARIANTS:
        p = probes[variant]
        active = "" if (variant == "plugin") == p["plugin_active"] else " (plugin state?)"
        print(f"{LABELS[variant] + active:42s} {med(variant, 'wall'):8.3f} "
              f"{med(variant, 'cpu'):8.3f} {str(p['tensorflow']):>20s} {str(p['keras']):>15s}")
    wall_ratio = med("plugin", "wall") / med("floor", "wall")
    cpu_ratio = med("plugin", "cpu") / med("floor", "cpu")
    print(f"{'ratio plugin/floor':42s} {wall_ratio:7.3f}x {cpu_ratio:7.3f}x")
    np_wall = med("floor+numpy", "wall") - med("floor", "wall")
    np_cpu = med("floor+numpy", "cpu") - med("floor", "cpu")
    print(f"{'plugin - floor (s)':42s} {med('plugin', 'wall') - med('floor', 'wall'):8.3f} "
          f"{med('plugin', 'cpu') - med('floor', 'cpu'):8.3f}")
    print(f"{'of which importing numpy (s, diagnostic)':42s} {np_wall:8.3f} {np_cpu:8.3f}")
    print()
    print_goal(f"collection with the plugin < +{100 * GOAL:.0f} % wall",
               f"{100 * (wall_ratio - 1):+.1f} % ({100 * (cpu_ratio - 1):+.1f} % CPU)",
               wall_ratio <= 1 + GOAL)
    tf_free = not any(p["tensorflow"] for p in probes.values())
    print_goal("collection imports no TensorFlow",
               "none" if tf_free else ", ".join(v for v, p in probes.items() if p["tensorflow"]),
               tf_free)
    if not probes["plugin"]["plugin_active"] or probes["floor"]["plugin_active"]:
        print("WARNING: the plugin was not active/inactive as intended: check the entry point")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
