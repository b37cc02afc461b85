"""Freeze + write + load + first run of a frozen graph: naive TF recipe vs formats/pb vs floor.

    python benchmarks/bench_freeze.py [--units 2048 --layers 4 --repeat 3]

Builds a Keras model (Input units -> layers x Dense units (relu) -> Dense 10), 16.8M float32
parameters (about 67 MB) at the defaults, and measures three ways of getting a frozen `.pb` and
running it once:

* naive: ``convert_variables_to_constants_v2(fn)`` + ``.graph.as_graph_def()``,
  ``SerializeToString`` + write; read + ``ParseFromString``, ``import_graph_def``, first
  ``Session.run`` with the default config (Grappler on).
* ours: ``formats.pb.freeze_function`` + ``FrozenGraph.write``; ``read_graph_def`` (with its
  checks); ``run_graph_def(grappler=False)`` (import + session + first run).
* floor: the work none of them can avoid: read the variables into numpy, write their raw bytes;
  read + ``ParseFromString`` the `.pb`, ``import_graph_def``, first run with the cheapest
  session config found (meta optimizer off, OptimizerOptions L0, which is ours' config).

Every measurement runs in a fresh Python process (TensorFlow import and model build untimed),
so each path pays its own first-time costs (page faults, kernel set-up) as a test run would;
the three paths are interleaved and each step's median over ``--repeat`` rounds is shown.
Ours' (and naive's) outputs are checked against the Keras model's (assert_allclose rtol 1e-5).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

VARIANTS = ("naive", "ours", "floor")
STEPS = (
    ("freeze", "freeze to GraphDef"),
    ("write", "serialize + write"),
    ("read", "read + parse"),
    ("import", "import_graph_def"),
    ("run", "session + first run"),
    ("import_run", "import + first run"),
)
GOAL = 5.0
sys.path.insert(0, str(Path(__file__).resolve().parent))
from goals import print_goal  # noqa: E402

# ---- worker: one variant in a fresh process ----------------------------------------------------


def _build(units: int, layers: int) -> tuple[Any, Any, Any]:
    """Return (tf, keras model, concrete function) for the benchmark model, seeded."""
    from pytest_modelpersist._tf import import_keras, import_tensorflow

    tf = import_tensorflow()
    keras = import_keras()
    keras.utils.set_random_seed(0)
    inp = keras.Input((units,), name="x")
    h = inp
    for i in range(layers):
        h = keras.layers.Dense(units, activation="relu", name=f"d{i}")(h)
    out = keras.layers.Dense(10, name="head")(h)
    model = keras.Model(inp, out)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([None, units], tf.float32, name="x")
    )
    return tf, model, fn


def worker(variant: str, units: int, layers: int, workdir: Path) -> dict[str, Any]:
    """Run one variant once; return its step times (s) and facts about the model."""
    import numpy as np

    tf, model, fn = _build(units, layers)
    x = np.random.RandomState(1).uniform(-1, 1, (8, units)).astype(np.float32)
    expected = model(x, training=False).numpy()
    n_params = int(sum(np.prod(v.shape) for v in model.weights))
    path = workdir / f"{variant}.pb"
    t: dict[str, float] = {}
    clock = time.perf_counter

    if variant == "naive":
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2,
        )

        t0 = clock()
        frozen_fn = convert_variables_to_constants_v2(fn)
        graph_def = frozen_fn.graph.as_graph_def()
        t1 = clock()
        data = graph_def.SerializeToString()
        path.write_bytes(data)
        t2 = clock()
        loaded = tf.compat.v1.GraphDef()
        loaded.ParseFromString(path.read_bytes())
        t3 = clock()
        graph = tf.Graph()
        with graph.as_default():
            tf.graph_util.import_graph_def(loaded, name="")
        t4 = clock()
        with tf.compat.v1.Session(graph=graph) as sess:
            y = sess.run(frozen_fn.outputs[0].name, {frozen_fn.inputs[0].name: x})
        t5 = clock()
        t.update(freeze=t1 - t0, write=t2 - t1, read=t3 - t2, import_=t4 - t3, run=t5 - t4)
        np.testing.assert_allclose(y, expected, rtol=1e-5)
    elif variant == "ours":
        from pytest_modelpersist.formats import pb as freezing

        t0 = clock()
        frozen = freezing.freeze_function(fn)
        t1 = clock()
        frozen.write(path)
        t2 = clock()
        loaded = freezing.read_graph_def(path)
        t3 = clock()
        (y,) = freezing.run_graph_def(loaded, {frozen.inputs[0]: x}, frozen.outputs[:1])
        t4 = clock()
        t.update(freeze=t1 - t0, write=t2 - t1, read=t3 - t2, import_run=t4 - t3)
        np.testing.assert_allclose(y, expected, rtol=1e-5)
        assert not frozen.variable_ops(), frozen.variable_ops()
    elif variant == "floor":
        from pytest_modelpersist.formats import pb as freezing

        # a .pb to load, made untimed
        freezing.freeze_function(fn).write(path)
        raw = workdir / "floor.bin"
        t0 = clock()
        arrays = [v.numpy() for v in fn.graph.variables]  # a copy, as a Const needs
        t1 = clock()
        with open(raw, "wb") as f:
            for a in arrays:
                f.write(memoryview(np.ascontiguousarray(a)).cast("B"))
        t2 = clock()
        loaded = tf.compat.v1.GraphDef()
        loaded.ParseFromString(path.read_bytes())
        t3 = clock()
        graph = tf.Graph()
        with graph.as_default():
            tf.graph_util.import_graph_def(loaded, name="")
        t4 = clock()
        config = tf.compat.v1.ConfigProto()
        config.graph_options.rewrite_options.disable_meta_optimizer = True
        config.graph_options.optimizer_options.opt_level = tf.compat.v1.OptimizerOptions.L0
        with tf.compat.v1.Session(graph=graph, config=config) as sess:
            y = sess.run("Identity:0", {"x:0": x})
        t5 = clock()
        t.update(freeze=t1 - t0, write=t2 - t1, read=t3 - t2, import_=t4 - t3, run=t5 - t4)
        np.testing.assert_allclose(y, expected, rtol=1e-5)
    else:
        raise SystemExit(f"unknown variant {variant!r}")

    if "import_" in t:
        t["import"] = t.pop("import_")
        t["import_run"] = t["import"] + t["run"]
    t["total"] = t["freeze"] + t["write"] + t["read"] + t["import_run"]
    return {"times": t, "params": n_params, "pb_bytes": path.stat().st_size}


# ---- driver ------------------------------------------------------------------------------------


def _run_worker(variant: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        variant,
        "--units",
        str(args.units),
        "--layers",
        str(args.layers),
        "--workdir",
        str(workdir),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout + proc.stderr[-4000:])
        raise SystemExit(f"worker {variant} failed (exit {proc.returncode})")
    return json.loads(lines[-1])


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="rounds (fresh process each)")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = worker(args.worker, args.units, args.layers, Path(args.workdir))
        print(json.dumps(result))
        return 0

    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    info: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_freeze_") as tmp:
        for r in range(args.repeat):
            for variant in VARIANTS:
                result = _run_worker(variant, args, Path(tmp))
                runs[variant].append(result["times"])
                info.setdefault("params", result["params"])
                if variant == "ours":
                    info["pb_bytes"] = result["pb_bytes"]
                totals = {k: round(v, 3) for k, v in result["times"].items()}
                print(f"round {r + 1}/{args.repeat} {variant:5s} {totals}", file=sys.stderr)

    def med(variant: str, step: str) -> float | None:
        values = [t[step] for t in runs[variant] if step in t]
        return statistics.median(values) if values else None

    print(
        f"\nmodel: Input {args.units} -> {args.layers} x Dense {args.units} -> Dense 10, "
        f"{info['params']:,} params, frozen .pb {info['pb_bytes'] / 2**20:.1f} MiB; "
        f"median of {args.repeat} fresh-process rounds, seconds\n"
    )
    header = (
        f"{'step':24s} {'naive s':>8s} {'ours s':>8s} {'floor s':>8s} "
        f"{'speedup naive/ours':>19s} {'ours/floor':>11s}"
    )
    print(header)
    print("-" * len(header))
    for step, label in (*STEPS, ("total", "TOTAL freeze+load+run")):
        n, o, f = med("naive", step), med("ours", step), med("floor", step)
        speed = n / o if n is not None and o else None
        ratio = o / f if o is not None and f else None
        print(
            f"{label:24s} {_fmt(n):>8s} {_fmt(o):>8s} {_fmt(f):>8s} "
            f"{_fmt(speed, '.1f') + 'x' if speed else '-':>19s} "
            f"{_fmt(ratio, '.2f') + 'x' if ratio else '-':>11s}"
        )
    total_speedup = med("naive", "total") / med("ours", "total")  # type: ignore[operator]
    print("\noutputs equal the Keras model's (rtol 1e-5).")
    print_goal(f"freeze+write+load+first run >= {GOAL:.0f}x faster than naive",
               f"{total_speedup:.1f}x faster", total_speedup >= GOAL)
    print("ours' 'import + first run' is one call (run_graph_def); its parts are not split.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
