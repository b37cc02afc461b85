"""Golden check of a large output: plugin vs np.load + np.allclose vs pytest-regressions.

    python benchmarks/bench_golden.py [--mb 80 --repeat 5 --cases identical,near]

One float32 output of ``--mb`` MB (80 MB = 20M elements, shape (N, 1000), seeded normal values)
is recorded once per path, untimed, then checked against the in-memory "actual" outputs:

* floor: the work no golden check can avoid: ``np.load`` of an uncompressed ``.npz`` written
  by ``np.savez`` + ``np.allclose(actual, expected)``.
* plugin read+compare: ``golden.read_golden(sidecar)`` (sidecar, member list and CRC checks,
  shape/dtype checks, ``allow_pickle=False``; zipfile verifies each member's CRC-32 while
  reading it) + ``compare.compare_outputs`` (per-dtype tolerance, the mismatch statistics).
* plugin assert_golden: a real ``Persist.assert_golden(outputs)`` call (what ``persist.check``
  does after the round trip), through ``Persist(fmt, tmp_path=..., options=CheckOptions(),
  golden=GoldenTarget(...))``.
* pytest-regressions: ``ndarrays_regression.check({"output_0": actual})`` inside a real pytest
  run (a subprocess; the recording run is untimed): it dumps the obtained array with
  ``np.savez_compressed``, copies the expected file into the test's datadir, loads both and
  compares with ``np.isclose``.

Cases: ``identical`` (the actual outputs are bit-equal to the golden: every CPU round trip),
``near`` (every element differs by about 2e-7 relative, within float32 tolerance: e.g. a
golden recorded on another machine). Every measurement runs in a fresh Python process, so
each path pays its own page faults; the paths are interleaved within each round and the median
over ``--repeat`` rounds is shown. Peak RSS is the process's high-water mark (VmHWM, reset
through /proc/self/clear_refs just before the timed call) above its RSS at that moment, i.e.
what the check adds on top of the outputs already in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

VARIANTS = ("floor", "plugin", "assert_golden", "regressions")
LABELS = {
    "floor": "floor: np.load + np.allclose",
    "plugin": "plugin: read_golden + compare_outputs",
    "assert_golden": "plugin: Persist.assert_golden",
    "regressions": "pytest-regressions ndarrays_regression",
}
CASES = ("identical", "near")
GOAL = 1.5
sys.path.insert(0, str(Path(__file__).resolve().parent))
from goals import print_goal  # noqa: E402

COLUMNS = 1000
NAME = "output_0"

# The pytest-regressions test, run by pytest in a subprocess; it times only the check call.
REGRESSIONS_TEST = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, {bench_dir!r})
    from bench_golden import actual_outputs, peak_reset, rss_mb, peak_mb

    def test_golden(ndarrays_regression):
        actual = actual_outputs({mb}, os.environ["BENCH_GOLDEN_CASE"])
        peak_reset()
        base = rss_mb()
        t0 = time.perf_counter()
        try:
            ndarrays_regression.check({{"output_0": actual}})
        finally:
            elapsed = time.perf_counter() - t0
            with open(os.environ["BENCH_GOLDEN_OUT"], "w") as fh:
                json.dump({{"seconds": elapsed, "peak_mb": peak_mb() - base}}, fh)
    """
)


# ---- memory helpers (Linux /proc) -------------------------------------------------------------


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def peak_mb() -> float:
    return _status_mb("VmHWM")


def peak_reset() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


# ---- data ------------------------------------------------------------------------------------


def expected_outputs(mb: float) -> Any:
    import numpy as np

    n = int(mb * 1e6 / 4) // COLUMNS * COLUMNS
    rng = np.random.default_rng(0)
    return rng.standard_normal(n, dtype=np.float32).reshape(-1, COLUMNS)


def actual_outputs(mb: float, case: str) -> Any:
    import numpy as np

    exp = expected_outputs(mb)
    if case == "identical":
        return exp
    if case == "near":  # about 2e-7 relative: a few ulps, well within rtol 1e-5
        exp *= np.float32(1 + 2e-7)
        return exp
    raise SystemExit(f"unknown case {case!r}")


def record(mb: float, workdir: Path) -> dict[str, Any]:
    """Write the floor's .npz, the plugin's golden; return their sizes."""
    import numpy as np

    from pytest_modelpersist import golden

    exp = expected_outputs(mb)
    floor = workdir / "floor.npz"
    np.savez(floor, **{NAME: exp})
    sidecar = golden.sidecar_path(workdir / "goldens", "test_golden")
    g = golden.write_golden(sidecar, [exp], names=[NAME], test="bench::test_golden",
                            inputs_crc=None)
    return {"elements": int(exp.size), "bytes": int(exp.nbytes),
            "npz_bytes": floor.stat().st_size, "golden_bytes": g.arrays_path.stat().st_size}


# ---- worker: one variant in a fresh process ---------------------------------------------------


class _NameOnly:
    """The format object Persist.assert_golden needs: only its name appears in messages."""

    name = "golden"


def worker(variant: str, case: str, mb: float, workdir: Path) -> dict[str, float]:
    import numpy as np

    from pytest_modelpersist import compare, golden
    from pytest_modelpersist.persist import CheckOptions, GoldenTarget, Persist

    actual = actual_outputs(mb, case)
    sidecar = golden.sidecar_path(workdir / "goldens", "test_golden")
    persist = Persist(_NameOnly(), tmp_path=workdir / "tmp",  # type: ignore[arg-type]
                      options=CheckOptions(), nodeid="bench::test_golden",
                      golden=GoldenTarget(workdir / "goldens", "test_golden",
                                          "bench::test_golden", "bench::test_golden"))
    clock = time.perf_counter
    peak_reset()
    base = rss_mb()
    t0 = clock()
    if variant == "floor":
        with np.load(workdir / "floor.npz") as npz:
            expected = npz[NAME]
        ok = bool(np.allclose(actual, expected))
    elif variant == "plugin":
        stored = golden.read_golden(sidecar)
        results = compare.compare_outputs(stored.arrays, [actual], names=stored.names)
        ok = all(r.ok for r in results)
    elif variant == "assert_golden":
        persist.assert_golden([actual])  # fails (raises) on a mismatch
        ok = True
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    elapsed = clock() - t0
    peak = peak_mb() - base
    if not ok:
        raise SystemExit(f"{variant}: the outputs do not match the golden")
    return {"seconds": elapsed, "peak_mb": peak}


# ---- driver ----------------------------------------------------------------------------------


def _run_worker(variant: str, case: str, args: argparse.Namespace,
                workdir: Path) -> dict[str, float]:
    if variant == "regressions":
        return _run_regressions(case, args, workdir)
    cmd = [sys.executable, __file__, "--worker", variant, "--case", case, "--mb", str(args.mb),
           "--workdir", str(workdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout + proc.stderr[-4000:])
        raise SystemExit(f"worker {variant}/{case} failed (exit {proc.returncode})")
    return json.loads(lines[-1])


def _regressions_project(args: argparse.Namespace, workdir: Path) -> Path:
    project = workdir / "regressions"
    project.mkdir(exist_ok=True)
    (project / "test_regressions.py").write_text(
        REGRESSIONS_TEST.format(bench_dir=str(Path(__file__).resolve().parent), mb=args.mb))
    return project


def _pytest_regressions(project: Path, case: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENCH_GOLDEN_CASE": case, "BENCH_GOLDEN_OUT": str(out)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-p", "no:modelpersist", "-p", "no:xdist", "test_regressions.py"]
    return subprocess.run(cmd, cwd=project, capture_output=True, text=True, env=env)


def _run_regressions(case: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    project = workdir / "regressions"
    out = workdir / "regressions.json"
    proc = _pytest_regressions(project, case, out)
    if proc.returncode != 0 or not out.exists():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"pytest-regressions run failed (exit {proc.returncode})")
    result = json.loads(out.read_text())
    out.unlink()
    return result


def _record_regressions(args: argparse.Namespace, workdir: Path) -> int:
    """The first pytest-regressions run records the expected file (and fails, by design)."""
    project = _regressions_project(args, workdir)
    out = workdir / "regressions.json"
    proc = _pytest_regressions(project, "identical", out)
    if "File not found in data directory, created" not in proc.stdout:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit("pytest-regressions did not record its expected file")
    out.unlink(missing_ok=True)
    return (project / "test_regressions" / "test_golden.npz").stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=80.0, help="output size, MB (1e6 bytes)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (fresh process each)")
    parser.add_argument("--cases", default=",".join(CASES), help="identical,near")
    parser.add_argument("--no-regressions", action="store_true",
                        help="skip pytest-regressions (about 7 s per run at 80 MB)")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.case, args.mb, Path(args.workdir))))
        return 0

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    variants = [v for v in VARIANTS if not (args.no_regressions and v == "regressions")]
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_golden_") as tmp:
        workdir = Path(tmp)
        info = record(args.mb, workdir)
        if "regressions" in variants:
            info["regressions_bytes"] = _record_regressions(args, workdir)
        for r in range(args.repeat):
            for case in cases:
                for variant in variants:
                    result = _run_worker(variant, case, args, workdir)
                    runs.setdefault((case, variant), []).append(result)
                    print(f"round {r + 1}/{args.repeat} {case:9s} {variant:13s} "
                          f"{result['seconds']:.3f} s  +{result['peak_mb']:.0f} MiB",
                          file=sys.stderr)

    def med(case: str, variant: str, key: str) -> float:
        return statistics.median(x[key] for x in runs[(case, variant)])

    print(f"\none float32 output, {info['elements']:,} elements = {info['bytes'] / 1e6:.0f} MB; "
          f"files: floor .npz {info['npz_bytes'] / 1e6:.1f} MB, plugin golden "
          f"{info['golden_bytes'] / 1e6:.1f} MB"
          + (f", pytest-regressions (compressed) {info['regressions_bytes'] / 1e6:.1f} MB"
             if "regressions_bytes" in info else "")
          + f"; median of {args.repeat} fresh-process rounds\n")
    header = (f"{'case':10s} {'path':40s} {'seconds':>8s} {'x floor':>8s} "
              f"{'peak RSS +MiB':>14s} {'x output':>9s}")
    print(header)
    print("-" * len(header))
    verdicts = []
    for case in cases:
        floor = med(case, "floor", "seconds")
        for variant in variants:
            s = med(case, variant, "seconds")
            peak = med(case, variant, "peak_mb")
            print(f"{case:10s} {LABELS[variant]:40s} {s:8.3f} {s / floor:7.2f}x "
                  f"{peak:14.0f} {peak * 2**20 / info['bytes']:8.2f}x")
            if variant in ("plugin", "assert_golden"):
                verdicts.append((case, variant, s / floor))
    print()
    for case, variant, ratio in verdicts:
        print_goal(f"{case}: {LABELS[variant]} <= {GOAL}x floor", f"{ratio:.2f}x", ratio <= GOAL)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
