"""Save + restore + run per format: the raw TF/Keras recipe (floor) vs `Persist.check`.

    python benchmarks/bench_formats.py [--sizes 1,67 --formats all --repeat 2]
    python benchmarks/bench_formats.py --sizes 500          # the memory goal (about 6 min)
    python benchmarks/bench_formats.py --sizes 2048 --plugin-only \
        --formats ckpt,tf_checkpoint,h5,weights_h5,keras,savedmodel \
        --max-shard-mb 512                  # the scale goal, sharded where the format can
    python benchmarks/bench_formats.py --sizes 2200 --plugin-only --formats pb  # > 2 GiB

For each model size (MB of float32 weights) a Keras Functional MLP is built (Input u ->
4 x Dense u (relu) -> Dense 10, u chosen to hit the size: 1 MB -> u=250, 67 MB -> u=2048,
500 MB -> u=5590), seeded; the inputs are 8 rows. Per format two paths are timed:

* floor: the cheapest recipe you would write by hand with TF/Keras' public API: run the model,
  save, restore (into a fresh ``build()`` model for the weights-only formats), run the restored
  model, ``np.testing.assert_allclose`` against the original outputs:

  - ckpt: the same work the plugin does on purpose, by hand with TF's public API: trace the
    model to a TF1 graph of its own (``tf.function`` -> ``import_graph_def`` with the captured
    variables mapped to graph variables named by path), ``Saver`` with its meta graph, then two
    restores: ``import_meta_graph`` + ``Saver.restore`` + ``Session.run`` (no model code), and
    ``tf.train.load_checkpoint`` values assigned into the rebuilt model (``floor_ckpt``);
  - tf_checkpoint: ``tf.train.Checkpoint(model=m).write`` / ``.read`` into the rebuilt model;
  - h5, keras: ``model.save`` / ``keras.models.load_model(compile=False)``;
  - weights_h5: ``model.save_weights`` / ``load_weights`` into the rebuilt model;
  - the two restores into a rebuilt model (tf_checkpoint, weights_h5) do by hand what the
    plugin does on purpose around them (``verified_restore``): change every variable, sample
    64 elements of each, restore, and require every variable to differ from its sample (a
    restore that loads nothing must fail), as ckpt's floor does the plugin's graph work;
  - savedmodel: ``model.export`` / ``tf.saved_model.load`` + ``serving_default`` call;
  - pb: ``convert_variables_to_constants_v2`` + ``SerializeToString`` + write / read +
    ``ParseFromString`` + ``import_graph_def`` + ``Session.run`` with the meta optimizer off
    (the fastest public session config; Grappler on costs seconds at 67 MB).

* plugin: ``Persist(fmt, tmp_path=..., options=CheckOptions()).check(model, x, build=build,
  golden=False)``, i.e. what the ``persist`` fixture runs in a test. With ``--max-shard-mb``
  its CheckOptions carry ``max_shard_mb`` (the ini ``persist_max_shard_mb``): tf_checkpoint,
  savedmodel and weights_h5 write shards of at most that many MB (2**20 bytes), the other
  formats whole files (their warning says why); the scale lines say how many shards.

Each (size, format) runs in two fresh processes: one runs floor, plugin, floor, plugin, ...
(``--repeat`` pairs), the other plugin, floor, ...; the seconds shown are the median of every
run of a path (each path gets one cold first-in-process run and warm ones). Peak RSS is taken
from the run that came first in its fresh process (VmHWM, reset through /proc/self/clear_refs
right before it, minus the RSS at that moment: TensorFlow, the model and its inputs are in the
baseline), so one path's peak never hides the other's. The plugin's time is split into phases
(run original, save, build, verify = perturb + read back, restore, run restored) by wrapping its
functions where they exist.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from goals import print_goal  # noqa: E402

FORMATS = ("ckpt", "tf_checkpoint", "h5", "weights_h5", "keras", "savedmodel", "pb")
VARIANTS = ("floor", "plugin")
LAYERS = 4
BATCH = 8
TIME_GOAL = 1.10
TIME_GOAL_SIZES = (67.0, 500.0)
RSS_GOAL = 3.0
RSS_GOAL_MB = 500
PB_LIMIT_MB = 2**31 / 1e6  # protobuf's 2 GiB: a bigger pb is refused before any weight is read
PB_RSS_GUARD_MB = 1000  # a pb this big, but under the limit, needs ~6x the model in RSS
#: --max-shard-mb: the plugin's saves split weights into files of at most this many MB (2**20
#: bytes) where the format can (tf_checkpoint, savedmodel, weights_h5); None: whole files.
MAX_SHARD_MB: float | None = None
PHASES = ("original", "save", "build", "verify", "restore", "run_restored")


# ---- memory helpers (Linux /proc) -------------------------------------------------------------


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_reset() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


# ---- the model ------------------------------------------------------------------------------


def units_for(mb: float) -> int:
    """Width u so that LAYERS x (u*u + u) + (10u + 10) float32 weights are about `mb` MB."""
    params = mb * 1e6 / 4
    return max(8, round(math.sqrt(params / LAYERS)))


def make_builder(units: int) -> Callable[[int], Any]:
    from pytest_modelpersist._tf import import_keras

    keras = import_keras()

    def build(seed: int = 1) -> Any:
        keras.utils.set_random_seed(seed)
        inp = keras.Input((units,), name="x")
        h = inp
        for i in range(LAYERS):
            h = keras.layers.Dense(units, activation="relu", name=f"d{i}")(h)
        out = keras.layers.Dense(10, name="head")(h)
        return keras.Model(inp, out)

    return build


# ---- the floor: raw TF/Keras per format -------------------------------------------------------


def floor(fmt: str, model: Any, x: Any, build: Callable[[], Any], directory: Path) -> None:
    """Save `model` in `fmt`, restore it, run it, compare with the original's outputs."""
    import numpy as np

    expected = model(x, training=False).numpy()
    recipe = FLOORS.get(fmt)
    if recipe is None:
        raise SystemExit(f"unknown format {fmt!r}")
    for actual in recipe(model, x, build, directory):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def _tf() -> tuple[Any, Any]:
    from pytest_modelpersist._tf import import_keras, import_tensorflow

    return import_tensorflow(), import_keras()


def floor_ckpt(model: Any, x: Any, build: Callable[[], Any], directory: Path) -> list[Any]:
    """The plugin's ckpt work, by hand with TF's public API: trace the model to a TF1 graph
    (variables named by path, placeholder ``x``, output ``output_0``), ``Saver`` with its meta
    graph, then restore twice: ``import_meta_graph`` + ``Saver.restore`` (no model code) and
    ``tf.train.load_checkpoint`` values assigned into the rebuilt model."""
    tf, _ = _tf()
    spec = tf.TensorSpec([None, *x.shape[1:]], tf.float32, name="x")
    fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(spec)
    by_handle = {id(v.value.handle): v for v in model.weights}
    values = {v.path: v.numpy() for v in model.weights}
    graph = tf.Graph()
    with graph.as_default():
        graph_vars = {v.path: tf.compat.v1.Variable(tf.zeros(v.shape), name=v.path,
                                                    use_resource=True) for v in model.weights}
        input_map = {internal.name: graph_vars[by_handle[id(external)].path].handle
                     for external, internal in fn.graph.captures}
        placeholder = tf.compat.v1.placeholder(tf.float32, spec.shape, name="x")
        input_map[fn.inputs[0].name] = placeholder
        (out,) = tf.graph_util.import_graph_def(fn.graph.as_graph_def(), input_map=input_map,
                                                return_elements=[fn.outputs[0].name], name="m")
        tf.identity(out, name="output_0")
        with tf.compat.v1.Session(graph=graph) as sess:
            for path, value in values.items():  # the model's weights into the graph's
                graph_vars[path].load(value, sess)
            del values
            saver = tf.compat.v1.train.Saver(var_list=graph_vars, save_relative_paths=True)
            prefix = saver.save(sess, str(directory / "model"))
    del graph, graph_vars, fn, input_map
    restored = tf.Graph()
    with restored.as_default():
        saver = tf.compat.v1.train.import_meta_graph(prefix + ".meta", clear_devices=True)
        with tf.compat.v1.Session(graph=restored) as sess:
            saver.restore(sess, prefix)
            from_meta = sess.run("output_0:0", {"x:0": x})
    del restored
    fresh = build()
    reader = tf.train.load_checkpoint(prefix)
    for v in fresh.weights:
        v.assign(reader.get_tensor(v.path))
    return [from_meta, fresh(x, training=False).numpy()]


def verified_restore(fresh: Any, restore: Callable[[], Any]) -> None:
    """`restore()` into the rebuilt model `fresh`, with the check the plugin runs on purpose
    around every restore into a rebuilt model, by hand: every variable is changed first
    (negated, plus one), 64 of its elements are sampled, and after the restore every variable
    must differ from its sample (a restore that loads nothing must fail)."""
    import numpy as np

    tf, _ = _tf()

    def sample(v: Any) -> Any:
        flat = tf.reshape(v, [-1])
        size = int(flat.shape[0])
        return tf.gather(flat, np.unique(np.linspace(0, size - 1, min(size, 64)).astype(int)))

    marks = []
    for v in fresh.weights:
        v.assign(-v + 1.0)
        marks.append(sample(v).numpy())
    restore()
    unrestored = [v.path for v, mark in zip(fresh.weights, marks, strict=True)
                  if np.array_equal(sample(v).numpy(), mark)]
    assert not unrestored, unrestored


def floor_tf_checkpoint(model: Any, x: Any, build: Callable[[], Any],
                        directory: Path) -> list[Any]:
    tf, _ = _tf()
    prefix = tf.train.Checkpoint(model=model).write(str(directory / "ckpt"))
    fresh = build()
    verified_restore(fresh, lambda: tf.train.Checkpoint(model=fresh).read(
        prefix).assert_existing_objects_matched())
    return [fresh(x, training=False).numpy()]


def floor_keras_file(suffix: str) -> Callable[..., list[Any]]:
    def recipe(model: Any, x: Any, build: Callable[[], Any], directory: Path) -> list[Any]:
        _, keras = _tf()
        path = str(directory / f"model.{suffix}")
        model.save(path)
        restored = keras.models.load_model(path, compile=False)
        return [restored(x, training=False).numpy()]

    return recipe


def floor_weights_h5(model: Any, x: Any, build: Callable[[], Any], directory: Path) -> list[Any]:
    path = str(directory / "model.weights.h5")
    model.save_weights(path)
    fresh = build()
    verified_restore(fresh, lambda: fresh.load_weights(path))
    return [fresh(x, training=False).numpy()]


def floor_savedmodel(model: Any, x: Any, build: Callable[[], Any], directory: Path) -> list[Any]:
    tf, _ = _tf()
    path = str(directory / "saved_model")
    spec = [tf.TensorSpec([None, *x.shape[1:]], tf.float32, name="x")]
    model.export(path, format="tf_saved_model", verbose=False, input_signature=spec)
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](x=tf.constant(x))
    return [next(iter(out.values())).numpy()]


def floor_pb(model: Any, x: Any, build: Callable[[], Any], directory: Path) -> list[Any]:
    tf, _ = _tf()
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(
        tf.TensorSpec([None, *x.shape[1:]], tf.float32, name="x"))
    frozen = convert_variables_to_constants_v2(fn)
    path = directory / "model.pb"
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    in_name, out_name = frozen.inputs[0].name, frozen.outputs[0].name
    del frozen, fn
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    del graph_def
    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    with tf.compat.v1.Session(graph=graph, config=config) as sess:
        return [sess.run(out_name, {in_name: x})]


FLOORS: dict[str, Callable[..., list[Any]]] = {
    "ckpt": floor_ckpt, "tf_checkpoint": floor_tf_checkpoint, "h5": floor_keras_file("h5"),
    "keras": floor_keras_file("keras"), "weights_h5": floor_weights_h5,
    "savedmodel": floor_savedmodel, "pb": floor_pb,
}


# ---- the plugin, with its phases timed --------------------------------------------------------


class PhaseTimer:
    """Adds the time of wrapped plugin functions to named phases (outermost call only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._depth = 0
        self.shards = 0  # the files the last plugin save split its weights into (0: whole)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    def timed(self, inner: Callable[..., Any], phase: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if self._depth:  # already inside a timed phase (perturb -> read values)
                return inner(*args, **kwargs)
            self._depth += 1
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self._depth -= 1
                self.add(phase, time.perf_counter() - t0)

        return call


# Plugin internals timed as phases inside a restore. restore.engine calls models.call_build
# (imported at call time) and its own _perturb/_unrestored wrappers; a name missing here stops
# the benchmark, so a refactoring cannot silently fold a phase into 'restore'.
INNER_PHASES = (
    ("pytest_modelpersist.models", "call_build", "build"),
    ("pytest_modelpersist.restore.engine", "_perturb", "verify"),
    ("pytest_modelpersist.restore.engine", "_unrestored", "verify"),
)


def plugin_setup(fmt_name: str) -> tuple[Any, PhaseTimer]:
    """The built-in format `fmt_name`, its save/restore and the plugin's helpers timed."""
    import importlib

    from pytest_modelpersist import persist as persist_module
    from pytest_modelpersist.formats import BUILTIN_FORMATS

    fmt = next(f() for f in BUILTIN_FORMATS if f.name == fmt_name)
    timer = PhaseTimer()
    for module_name, attr, phase in INNER_PHASES:
        module = importlib.import_module(module_name)
        if not callable(getattr(module, attr, None)):
            raise SystemExit(f"bench_formats: {module_name}.{attr} is gone: update INNER_PHASES")
        setattr(module, attr, timer.timed(getattr(module, attr), phase))
    fmt.save = timer.timed(fmt.save, "save")  # type: ignore[method-assign]
    restore = fmt.restore

    def restore_minus_inner(*args: Any, **kwargs: Any) -> Any:
        before = sum(timer.seconds.get(p, 0.0) for p in ("build", "verify"))
        t0 = time.perf_counter()
        try:
            return restore(*args, **kwargs)
        finally:
            inner = sum(timer.seconds.get(p, 0.0) for p in ("build", "verify")) - before
            timer.add("restore", time.perf_counter() - t0 - inner)

    fmt.restore = restore_minus_inner  # type: ignore[method-assign]
    persist_module.run = timer.timed(persist_module.run, "original")  # type: ignore[assignment]
    return fmt, timer


def plugin(fmt: Any, timer: PhaseTimer, model: Any, x: Any, build: Callable[[], Any],
           directory: Path) -> dict[str, float]:
    from pytest_modelpersist.formats.base import Restored
    from pytest_modelpersist.persist import CheckOptions, Persist

    timer.seconds.clear()
    orig_call = Restored.outputs  # what check() calls (__call__ goes through it too)
    Restored.outputs = timer.timed(orig_call, "run_restored")  # type: ignore[method-assign]
    try:
        persist = Persist(fmt, tmp_path=directory,
                          options=CheckOptions(max_shard_mb=MAX_SHARD_MB),
                          nodeid=f"bench::test_{fmt.name}")
        artifact = persist.check(model, x, build=build, golden=False).artifact
    finally:
        Restored.outputs = orig_call  # type: ignore[method-assign]
    timer.shards = len(artifact.meta.get("shards") or {})  # 0: whole files
    return dict(timer.seconds)


# ---- worker: one (size, format) in a fresh process --------------------------------------------


def worker(fmt_name: str, mb: float, order: list[str], workdir: Path,
           profile: bool = False, expect_failure: bool = False) -> dict[str, Any]:
    import numpy as np

    build_seeded = make_builder(units_for(mb))
    model = build_seeded(0)
    units = units_for(mb)
    x = np.random.default_rng(2).uniform(-1, 1, (BATCH, units)).astype(np.float32)
    model(x, training=False)  # the model exists and has run once: part of the baseline
    model_bytes = int(sum(np.prod(v.shape) * 4 for v in model.weights))
    fmt, timer = plugin_setup(fmt_name)
    build = lambda: build_seeded(1)  # noqa: E731  (a fresh, differently initialized model)
    runs: list[dict[str, Any]] = []
    for i, variant in enumerate(order):
        directory = workdir / f"{variant}{i}"
        directory.mkdir(parents=True)
        if i == 0:
            peak_reset()
            base = _status_mb("VmRSS")
        t0 = time.perf_counter()
        phases, error = None, None
        if variant == "floor":
            floor(fmt_name, model, x, build, directory)
        elif expect_failure:  # the scale run: a refusal (pb over 2 GiB) is its result
            try:
                phases = plugin(fmt, timer, model, x, build, directory)
            except BaseException as exc:  # noqa: BLE001  (pytest.fail raises a BaseException)
                error = f"{type(exc).__name__}: {exc}"
        elif profile and i == len(order) - 1:  # the last (warm) plugin run, profiled
            import cProfile
            import pstats

            prof = cProfile.Profile()
            phases = prof.runcall(plugin, fmt, timer, model, x, build, directory)
            stats = pstats.Stats(prof, stream=sys.stderr)
            only = os.environ.get("BENCH_PROFILE_FILTER", "")  # e.g. pytest_modelpersist
            stats.sort_stats("cumulative").print_stats(only, 35)
            stats.sort_stats("tottime").print_stats(15)
        else:
            phases = plugin(fmt, timer, model, x, build, directory)
        elapsed = time.perf_counter() - t0
        run: dict[str, Any] = {"variant": variant, "seconds": elapsed, "phases": phases,
                               "error": error, "shards": timer.shards}
        if i == 0:
            run["peak_mb"] = _status_mb("VmHWM") - base
        shutil.rmtree(directory)
        runs.append(run)
    return {"model_bytes": model_bytes, "units": units, "runs": runs}


# ---- driver ----------------------------------------------------------------------------------


def _run_worker(fmt: str, mb: float, order: list[str], workdir: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", fmt, "--mb", str(mb), "--order", ",".join(order),
           "--workdir", str(workdir)]
    if order == ["plugin"]:
        cmd.append("--expect-failure")
    if MAX_SHARD_MB is not None:
        cmd += ["--max-shard-mb", str(MAX_SHARD_MB)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-6000:])
        raise SystemExit(f"worker {fmt} {mb} MB failed (exit {proc.returncode})")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,67", help="model sizes in MB, comma separated")
    parser.add_argument("--formats", default="all", help="comma list or 'all'")
    parser.add_argument("--repeat", type=int, default=2,
                        help="floor/plugin pairs per process (two processes: runs per path "
                             "= 2 x repeat)")
    parser.add_argument("--profile", metavar="FORMAT",
                        help="instead of the table: cProfile one warm plugin run of FORMAT at "
                             "the first size (stats on stderr)")
    parser.add_argument("--plugin-only", action="store_true",
                        help="the scale run: one plugin run per format and size, in a fresh "
                             "process (peak RSS, and pb's 2 GiB refusal); no floor")
    parser.add_argument("--max-shard-mb", type=float,
                        help="the plugin's saves shard weights into files of at most this many "
                             "MB (2**20 bytes) where the format can (the ini "
                             "persist_max_shard_mb); default: whole files")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--expect-failure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mb", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--order", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global MAX_SHARD_MB
    MAX_SHARD_MB = args.max_shard_mb

    if args.worker:
        result = worker(args.worker, args.mb, args.order.split(","), Path(args.workdir),
                        profile=args.profile is not None, expect_failure=args.expect_failure)
        print(json.dumps(result))
        return 0

    sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="bench_formats_") as tmp:
            cmd = [sys.executable, __file__, "--worker", args.profile, "--mb", str(sizes[0]),
                   "--order", "floor,plugin,plugin", "--workdir", tmp, "--profile", "1"]
            return subprocess.run(cmd, env={**os.environ}).returncode
    formats = list(FORMATS) if args.formats == "all" else [
        f.strip() for f in args.formats.split(",") if f.strip()]
    too_big = [mb for mb in sizes if "pb" in formats and PB_RSS_GUARD_MB <= mb < PB_LIMIT_MB]
    if too_big:  # pb holds it, at about 6x the model in RSS (see README, Performance)
        raise SystemExit(f"pb at {too_big[0]:g} MB would fit in one GraphDef and need about 6x "
                         f"the model in memory; leave pb out, or take >= {PB_LIMIT_MB:.0f} MB "
                         "to check its 2 GiB refusal")
    rows = [measure(mb, fmt, args.repeat, args.plugin_only) for mb in sizes for fmt in formats]
    print(f"\nKeras Functional MLP, Input u -> {LAYERS} x Dense u (relu) -> Dense 10, batch "
          f"{BATCH}; seconds are medians of {rows[0]['n'] if rows else 0} runs per path "
          "(fresh processes, interleaved); peak RSS above the process baseline (TF + model + "
          f"inputs), MiB; load average at the start {os.getloadavg()[0]:.1f} (2 cores)\n")
    if args.plugin_only:
        return report_scale(rows)
    report_table(rows)
    return report_goals(rows)


def measure(mb: float, fmt: str, repeat: int, plugin_only: bool) -> dict[str, Any]:
    """Run `fmt` at `mb` MB in fresh processes (each path first once); the row's figures."""
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    row: dict[str, Any] = {"mb": mb, "fmt": fmt, "peaks": {}, "phases": [], "error": None}
    orders = [["plugin"]] if plugin_only else [
        [first, next(v for v in VARIANTS if v != first)] * repeat for first in VARIANTS]
    for order in orders:
        with tempfile.TemporaryDirectory(prefix="bench_formats_") as tmp:
            result = _run_worker(fmt, mb, order, Path(tmp))
        row.update(model_bytes=result["model_bytes"], units=result["units"])
        for run in result["runs"]:
            samples[run["variant"]].append(run["seconds"])
            row["error"] = row["error"] or run.get("error")
            row["shards"] = max(row.get("shards", 0), run.get("shards", 0))
            if "peak_mb" in run:
                row["peaks"][run["variant"]] = run["peak_mb"]
            if run["phases"]:
                row["phases"].append(run["phases"])
        print(f"{mb:g} MB {fmt:13s} {order[0]}-first: "
              + " ".join(f"{r['variant'][0]}={r['seconds']:.2f}" for r in result["runs"])
              + f"  peak {order[0]} +{row['peaks'][order[0]]:.0f} MiB", file=sys.stderr)
    row["floor_s"] = statistics.median(samples["floor"]) if samples["floor"] else float("nan")
    row["plugin_s"] = statistics.median(samples["plugin"])
    row["phase_med"] = {p: statistics.median(ph.get(p, 0.0) for ph in row["phases"]) if
                        row["phases"] else 0.0 for p in PHASES}
    row["n"] = len(samples["plugin"])
    return row


def report_table(rows: list[dict[str, Any]]) -> None:
    header = (f"{'size':>7s} {'format':13s} {'floor s':>8s} {'plugin s':>9s} {'ratio':>7s} "
              f"{'floor RSS':>10s} {'plugin RSS':>11s} {'plugin RSS/model':>17s}")
    print(header)
    print("-" * len(header))
    for r in rows:
        model_mib = r["model_bytes"] / 2**20
        print(f"{r['model_bytes'] / 1e6:6.1f}M {r['fmt']:13s} {r['floor_s']:8.3f} "
              f"{r['plugin_s']:9.3f} {r['plugin_s'] / r['floor_s']:6.2f}x "
              f"{r['peaks']['floor']:10.0f} {r['peaks']['plugin']:11.0f} "
              f"{r['peaks']['plugin'] / model_mib:16.2f}x")
    print("\nplugin phases, median seconds: original = run the model; build = build() of the "
          "fresh model; verify = perturb its variables before the restore and read them back "
          "after (a restore that loads nothing fails); restore = the rest of the restore\n")
    header = f"{'size':>7s} {'format':13s} " + " ".join(f"{p:>12s}" for p in PHASES)
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['model_bytes'] / 1e6:6.1f}M {r['fmt']:13s} "
              + " ".join(f"{r['phase_med'][p]:12.3f}" for p in PHASES))


def report_goals(rows: list[dict[str, Any]]) -> int:
    """One goal line per (size, format): time at 67 and 500 MB, peak RSS at 500 MB."""
    print()
    for r in rows:
        ratio = r["plugin_s"] / r["floor_s"]
        what = f"{r['mb']:g} MB {r['fmt']}"
        if r["mb"] in TIME_GOAL_SIZES:
            print_goal(f"{what}: plugin time <= {TIME_GOAL:.2f}x floor", f"{ratio:.2f}x",
                       ratio <= TIME_GOAL)
        if r["mb"] >= RSS_GOAL_MB:
            rss = r["peaks"]["plugin"] / (r["model_bytes"] / 2**20)
            print_goal(f"{what}: peak RSS <= {RSS_GOAL:.0f}x model bytes", f"{rss:.2f}x",
                       rss <= RSS_GOAL)
    if not any(r["mb"] >= RSS_GOAL_MB for r in rows):
        print_goal(f"peak RSS <= {RSS_GOAL:.0f}x model bytes at {RSS_GOAL_MB} MB",
                   "(run --sizes 500)", None)
    return 0


def report_scale(rows: list[dict[str, Any]]) -> int:
    """The scale goal: each format holds the model within the RSS goal, or (pb over 2 GiB)
    refuses it with the protobuf-limit message."""
    for r in rows:
        what = f"{r['model_bytes'] / 2**30:.2f} GiB model, {r['fmt']}"
        rss = r["peaks"]["plugin"] / (r["model_bytes"] / 2**20)
        if r["error"] is None:
            held = f"{r['shards']} shards" if r.get("shards") else "whole files"
            print_goal(f"{what}: checked, peak RSS <= {RSS_GOAL:.0f}x model",
                       f"{rss:.2f}x, {r['plugin_s']:.0f} s, {held}", rss <= RSS_GOAL)
            continue
        print(f"  {r['fmt']}: {r['error'][:400]}")
        refused = r["fmt"] == "pb" and "2 GiB" in r["error"]
        print_goal(f"{what}: " + ("refused with the 2 GiB protobuf message" if r["fmt"] == "pb"
                                  else "checked"), "refused" if refused else "failed",
                   refused)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
