"""Does training resume from a saved model? The engine of `persist.check_training`.

The model trains `steps` steps, is saved, and restored; then both the restored model and the
original (uninterrupted) train `steps` more on the same batches. A correct restore makes the
two runs identical on CPU, so the comparison is exact by default. What differs is named:
weights, optimizer variables (slots such as ``optimizer/dense_kernel_momentum`` and
``optimizer/iteration``), preprocessing state (an adapted Normalization's mean and variance, a
lookup vocabulary), the compile configuration, and the losses and metrics of the continued
steps.

The model given is trained in place and put back as it was afterwards (every variable of the
model, its optimizer and metrics is reassigned); an optimizer not yet built is built first,
which gives it the zero state its first training step would.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import compat
from ._tf import import_keras, import_tensorflow
from .errors import PersistWarning
from .formats import shards
from .models import tf_variable
from .training_state import (
    align_rng,
    compile_summary,
    config_diff,
    describe_differences,
    pair_variables,
    preprocessing_problems,
)

#: Why a format cannot resume training: the check is skipped with the reason.
NO_TRAINING_STATE = {
    "savedmodel": "a SavedModel holds a serving graph and the model's variables, not the "
                  "optimizer's state or compile configuration: training cannot resume from it",
    "pb": "a frozen graph holds constants only: training cannot resume from it",
}


class TrainingCheckError(Exception):
    """A check_training call that cannot run as given (not compiled, too little data...)."""


@dataclass
class TrainingReport:
    """What `check_training` found; `problems` is empty when training resumed exactly."""

    format: str
    path: Path
    how: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    losses: tuple[list[float], list[float]] = ([], [])

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        """The failure message (problems, then notes)."""
        lines = [f"[{self.format}] training did not resume from {self.path} ({self.how}):"]
        lines += [f"  {p}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


Batch = tuple[Any, Any, Any]  # x, y, sample_weight (None)


def batches_of(data: Any, count: int, batch_size: int) -> list[Batch]:
    """`count` batches from an ``(x, y)`` pair (sliced in order, no shuffling) or from a
    batched tf.data.Dataset of ``(x, y)`` / ``(x, y, sample_weight)`` (repeated if short)."""
    tf = import_tensorflow()
    if isinstance(data, tf.data.Dataset):
        found = []
        for element in data.repeat().take(count).as_numpy_iterator():
            if not isinstance(element, tuple) or len(element) not in (2, 3):
                raise TrainingCheckError(
                    "check_training needs a dataset of (x, y) or (x, y, sample_weight) "
                    f"batches; this one yields {type(element).__name__}")
            found.append((element[0], element[1], element[2] if len(element) == 3 else None))
        if len(found) < count:
            raise TrainingCheckError(f"the dataset yielded {len(found)} batches; "
                                     f"check_training needs {count} (2 x steps)")
        return found
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TrainingCheckError("check_training needs data as an (x, y) pair or a batched "
                                 f"tf.data.Dataset, not {type(data).__name__}")
    x, y = data
    n = len(tf.nest.flatten(x)[0])
    size = min(batch_size, n // count)
    if size < 1:
        raise TrainingCheckError(f"the data has {n} samples; check_training needs at least "
                                 f"{count} (one per step: 2 x steps)")

    def part(i: int) -> Any:
        return lambda a: np.asarray(a)[i * size:(i + 1) * size]

    return [(tf.nest.map_structure(part(i), x), part(i)(y), None) for i in range(count)]


def _train(model: Any, batches: Sequence[Batch], seed: int) -> list[dict[str, float]]:
    """Train on each batch in order; returns each step's logs (loss and metrics)."""
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    return [{k: float(v) for k, v in model.train_on_batch(x, y, sample_weight=w,
                                                          return_dict=True).items()}
            for x, y, w in batches]


def _all_variables(model: Any) -> list[Any]:
    found = list(model.variables)
    if getattr(model, "optimizer", None) is not None:
        found += list(model.optimizer.variables)
    return found + compat.metrics_variables(model)


@contextlib.contextmanager
def put_back(model: Any) -> Iterator[None]:
    """Give every variable of `model` (weights, optimizer, metrics) its value back afterwards,
    and Python's and NumPy's global random states (the training steps seed them)."""
    import random

    saved = [(v, v.numpy()) for v in _all_variables(model)]
    states = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        for v, value in saved:
            v.assign(value)
        random.setstate(states[0])
        np.random.set_state(states[1])


def require_compiled(model: Any) -> None:
    keras = compat.keras_package_of(model)
    if not isinstance(model, keras.Model):
        raise TrainingCheckError(
            f"check_training trains Keras models (compile + train_on_batch); got "
            f"{type(model).__name__}")
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", True):
        raise TrainingCheckError("check_training needs a compiled model: call "
                                 "model.compile(optimizer=..., loss=...) first")


def ready_for_training(restored: Any, original: Any, first: Batch, notes: list[str],
                       *, holds_compile: bool) -> list[str]:
    """Compile (if the restore did not) and build `restored` so it can train; returns problems.

    A full-model file (`holds_compile`) that comes back uncompiled lost its compile
    configuration: that is a problem. A weights-only restore into `build()` takes the
    original's configuration when build() did not compile (the files never held it).
    """
    problems = []
    if getattr(restored, "optimizer", None) is None or not getattr(restored, "compiled", True):
        if holds_compile:
            problems.append("compile configuration not restored: the restored model is not "
                            "compiled (loss, metrics and optimizer are not in the file)")
        else:
            notes.append("build() returned an uncompiled model: compiled it with the "
                         "original's configuration")
        config = dict(original.get_compile_config() or {})
        # The optimizer object itself, not the config's copy: Keras 3's legacy HDF5 save pops
        # "optimizer" from the live model's compile config (keras/src/legacy/saving/
        # saving_utils.py), and compile_from_config then picks RMSprop.
        keras = compat.keras_package_of(original)
        config["optimizer"] = keras.optimizers.serialize(original.optimizer)
        restored.compile_from_config(config)
    if len(restored.variables) < len(original.variables):
        restored(first[0], training=False)  # a subclassed build() may create them lazily
    compat.build_optimizer(restored.optimizer, restored.trainable_variables)
    return problems


def state_problems(original: Any, restored: Any, *, rtol: float, atol: float,
                   notes: list[str]) -> list[str]:
    """What the restore did not bring back: weights, optimizer variables, preprocessing
    state, compile configuration (before any further training)."""
    problems = []
    for label, (ours, theirs) in (("model variables", (original.variables, restored.variables)),
                                  ("optimizer variables", (original.optimizer.variables,
                                                           restored.optimizer.variables))):
        pairs, unmatched = pair_variables(ours, theirs, optimizer=label.startswith("opt"),
                                          owners=_optimizer_names(original, restored))
        if unmatched:
            problems.append(f"{label} missing from the restored model: {', '.join(unmatched)}")
        rng = align_rng(pairs)
        if rng:
            notes.append(f"RNG state not restored ({', '.join(rng)}): set to the original's "
                         "before continuing, so both runs draw the same dropout masks")
        wrong = describe_differences(pairs, rtol=rtol, atol=atol)
        if wrong:
            problems.append(f"{label} not restored: {', '.join(wrong)}")
    problems += preprocessing_problems(original, restored)
    changed = config_diff(compile_summary(original), compile_summary(restored))
    if changed:
        problems.append(f"compile configuration differs: {'; '.join(changed)}")
    return problems


def _optimizer_names(*models: Any) -> set[str]:
    return {str(getattr(m.optimizer, "name", "")) for m in models} - {""}


def _log_problems(ours: list[dict[str, float]], theirs: list[dict[str, float]], first_step: int,
                  rtol: float, atol: float) -> list[str]:
    found = []
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for key in a:
            if key in b and not np.isclose(a[key], b[key], rtol=rtol, atol=atol):
                found.append(f"{key} at step {first_step + i + 1}: {a[key]:.8g} "
                             f"(uninterrupted) vs {b[key]:.8g} (restored)")
    return found


def continued_problems(original: Any, restored: Any, batches: Sequence[Batch], *, first_step: int,
                       seed: int, rtol: float, atol: float) -> tuple[list[str], list[list[float]]]:
    """Train both `len(batches)` more steps; what differs afterwards, and both loss curves."""
    ours = _train(original, batches, seed)
    try:
        theirs = _train(restored, batches, seed)
    except Exception as exc:  # the library refusing to train the restore is the finding
        return [f"the restored model cannot train: {type(exc).__name__}: {_first_line(exc)}"
                ], [[log["loss"] for log in ours], []]
    found = _log_problems(ours, theirs, first_step, rtol, atol)
    for label, pairs in (("weights", pair_variables(original.variables, restored.variables)[0]),
                         ("optimizer variables", pair_variables(
                             original.optimizer.variables, restored.optimizer.variables,
                             optimizer=True, owners=_optimizer_names(original, restored))[0])):
        wrong = describe_differences(pairs, rtol=rtol, atol=atol)
        if wrong:
            found.append(f"{label} differ: {', '.join(wrong)}")
    if found:
        found = [f"after {len(batches)} more steps on both (uninterrupted vs restored):"] + [
            f"  {line}" for line in found]
    return found, [[log["loss"] for log in ours], [log["loss"] for log in theirs]]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


Saver = Callable[[Any, Path], Path]
#: load(path, prepare): `prepare(model)` compiles and builds a model made by build() before
#: values are read into it (an optimizer's slots must exist to be restored).
Loader = Callable[[Path, Callable[[Any], Any]], Any]


def check_training(model: Any, data: Any, *, fmt: str, directory: Path, save: Saver,
                   load: Loader, how: str, holds_compile: bool, steps: int = 2,
                   batch_size: int = 32, rtol: float = 0.0, atol: float = 0.0,
                   seed: int = 0) -> TrainingReport:
    """Train, save with `save(model, directory) -> path`, restore with `load(path, prepare)
    -> model`, train both further and compare; returns the report (`ok` when training resumed
    exactly).

    Raises TrainingCheckError for a call that cannot run (model not compiled, data too
    small). `model` is put back as it was (see the module's docstring).
    """
    require_compiled(model)
    if steps < 1:
        raise TrainingCheckError(f"steps must be at least 1, not {steps}")
    tf = import_tensorflow()
    if tf.config.list_physical_devices("GPU"):
        # GPU kernels (cuDNN, atomics) are not deterministic by default; CPU ones are.
        tf.config.experimental.enable_op_determinism()
    batches = batches_of(data, 2 * steps, batch_size)
    compat.build_optimizer(model.optimizer, model.trainable_variables)
    with put_back(model):
        _train(model, batches[:steps], seed)
        path = save(model, directory)
        report = TrainingReport(fmt, path, how)

        def prepare(target: Any) -> Any:
            ready_for_training(target, model, batches[0], report.notes, holds_compile=False)
            return target

        try:
            restored = load(path, prepare)
        except (ValueError, KeyError, OSError, tf.errors.OpError) as exc:
            # TensorFlow and Keras refuse a checkpoint that does not fit with these types.
            report.problems.append(f"the restore failed: {type(exc).__name__}: "
                                   f"{_first_line(exc)}")
            return report
        report.problems += ready_for_training(restored, model, batches[0], report.notes,
                                              holds_compile=holds_compile)
        report.problems += state_problems(model, restored, rtol=rtol, atol=atol,
                                          notes=report.notes)
        found, (ours, theirs) = continued_problems(model, restored, batches[steps:],
                                                   first_step=steps, seed=seed, rtol=rtol,
                                                   atol=atol)
        report.problems += found
        report.losses = (ours, theirs)
    return report


@dataclass(frozen=True)
class TrainingIO:
    """How one format saves a model with its training state and brings it back."""

    save: Saver
    load: Loader
    how: str
    holds_compile: bool


def format_io(fmt: str, *, build: Callable[[], Any] | None, safe_mode: bool = True,
              keras: Any = None, max_shard_mb: float | None = None) -> TrainingIO:
    """The built-in way `fmt` saves and restores training state.

    `keras` is the package whose `load_model` reads the files (the model's: `tf_keras` for a
    Keras 2 model; default `keras`). `max_shard_mb` splits the saved weights into files of at
    most that many MB where the format and versions can (tf_checkpoint, weights_h5; as
    `persist.save`), else whole files after a PersistWarning saying why. Raises
    TrainingCheckError when the format needs `build` and has none; KeyError (with the reason,
    see NO_TRAINING_STATE) when the format cannot hold training state.
    """
    keras, tf = keras or import_keras(), import_tensorflow()
    if max_shard_mb is not None and fmt in ("keras", "h5", "ckpt"):  # whole files only
        _warn_whole(fmt, shards.whole_reason(fmt))

    def rebuilt(prepare: Callable[[Any], Any]) -> Any:
        if build is None:
            raise TrainingCheckError(
                f"{fmt} holds variables only, so check_training needs build=<a zero-argument "
                "callable returning a fresh model of the same architecture>")
        return prepare(build())

    def load_model(path: Path, prepare: Callable[[Any], Any]) -> Any:
        return keras.models.load_model(str(path), compile=True, safe_mode=safe_mode)

    def save_file(name: str) -> Saver:
        def save(model: Any, directory: Path) -> Path:
            model.save(str(directory / name))
            return directory / name
        return save

    def save_object_checkpoint(model: Any, directory: Path) -> Path:
        # A Keras 3 model tracks its optimizer: both are in the object graph.
        options, why = shards.tf_options(max_shard_mb)
        if why:
            _warn_whole(fmt, why)
        return Path(tf.train.Checkpoint(model=model).write(str(directory / "ckpt"),
                                                           options=options))

    def load_object_checkpoint(path: Path, prepare: Callable[[Any], Any]) -> Any:
        target = rebuilt(prepare)
        tf.train.Checkpoint(model=target).read(str(path))  # what did not load is compared
        return target

    if fmt == "keras":
        return TrainingIO(save_file("model.keras"), load_model,
                          "keras.models.load_model(compile=True)", True)
    if fmt == "h5":
        return TrainingIO(save_file("model.h5"), load_model,
                          "keras.models.load_model(compile=True) of legacy HDF5", True)
    if fmt == "weights_h5":
        return TrainingIO(functools.partial(save_weights, max_shard_mb=max_shard_mb),
                          lambda path, prepare: load_weights(path, rebuilt(prepare)),
                          "model.load_weights into build() (optimizer built first)", False)
    if fmt == "tf_checkpoint":
        return TrainingIO(save_object_checkpoint, load_object_checkpoint,
                          "tf.train.Checkpoint(model=build()).read", False)
    if fmt == "ckpt":
        return TrainingIO(save_saver, lambda path, prepare: load_saver(path, rebuilt(prepare)),
                          "tf.compat.v1.train.Saver restore into build()", False)
    raise KeyError(NO_TRAINING_STATE.get(fmt, f"check_training does not know how the {fmt} "
                                              "format saves training state"))


def save_weights(model: Any, directory: Path, max_shard_mb: float | None = None) -> Path:
    """`model.save_weights`: Keras 3 writes a compiled model's optimizer state into the
    `.weights.h5` file too (its ``optimizer/vars`` group); with `max_shard_mb` (Keras >= 3.10)
    into ``model_NNNNN.weights.h5`` shards named by ``model.weights.json``."""
    path, why = shards.save_keras_weights(model, directory, "model.weights.h5", max_shard_mb)
    if why:
        _warn_whole("weights_h5", why)
    return path


def _warn_whole(fmt: str, why: str) -> None:
    """A check_training save asked to shard writes whole files: say why, once per call site."""
    warnings.warn(PersistWarning(f"[{fmt}] max_shard_mb asked for shards, but check_training "
                                 f"saves whole files: {why}"), stacklevel=4)


def load_weights(path: Path, target: Any) -> Any:
    """`load_weights` into a model whose optimizer is built: an unbuilt one skips the saved
    optimizer state with only a warning."""
    target.load_weights(str(path))
    return target


def _saver_vars(model: Any) -> dict[str, Any]:
    """Model and optimizer variables keyed by position: a rebuilt model's layer names may
    differ (``dense_1``), its variable order does not."""
    named = {f"model/{i:04d}": v for i, v in enumerate(model.variables)}
    named.update({f"optimizer/{i:04d}": v for i, v in enumerate(model.optimizer.variables)})
    return {k: tf_variable(v) for k, v in named.items()}


def save_saver(model: Any, directory: Path) -> Path:
    """A TF1 Saver checkpoint (eager mode) of the model's and its optimizer's variables."""
    tf = import_tensorflow()
    return Path(tf.compat.v1.train.Saver(var_list=_saver_vars(model)).save(
        None, str(directory / "model")))


def load_saver(path: Path, target: Any) -> Any:
    tf = import_tensorflow()
    tf.compat.v1.train.Saver(var_list=_saver_vars(target)).restore(None, str(path))
    return target


def check_in_test(fmt: str, model: Any, data: Any, *, directory: Path,
                  build: Callable[[], Any] | None = None, steps: int = 2, batch_size: int = 32,
                  save: Callable[[Any, Path], Any] | None = None,
                  load: Callable[[Path], Any] | None = None, rtol: float = 0.0,
                  atol: float = 0.0, safe_mode: bool = True,
                  max_shard_mb: float | None = None) -> TrainingReport:
    """`persist.check_training` for the format `fmt`: skip when the format cannot hold
    training state, fail with the report when training does not resume; returns the report.

    `save(model, directory) -> path` and `load(path) -> model` replace the format's own
    (your training loop's checkpoint code); they run whatever the item's format.
    """
    __tracebackhide__ = True
    import pytest

    if (save is None) != (load is None):
        pytest.fail(f"[{fmt}] check_training takes save= and load= together", pytrace=False)
    if max_shard_mb is not None:
        try:
            max_shard_mb = shards.check_size(max_shard_mb, shards.OPTION)
        except ValueError as exc:
            pytest.fail(f"[{fmt}] {exc}", pytrace=False)
    if save is not None and load is not None:
        user_save, user_load = save, load
        io = TrainingIO(lambda m, d: Path(user_save(m, d) or d),
                        lambda path, prepare: user_load(path), "your save= and load=", False)
    else:
        try:
            io = format_io(fmt, build=build, safe_mode=safe_mode,
                           keras=compat.keras_package_of(model), max_shard_mb=max_shard_mb)
        except KeyError as exc:
            pytest.skip(f"[{fmt}] {exc.args[0]}")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        report = check_training(model, data, fmt=fmt, directory=directory, save=io.save,
                                load=io.load, how=io.how, holds_compile=io.holds_compile,
                                steps=steps, batch_size=batch_size, rtol=rtol, atol=atol)
    except TrainingCheckError as exc:
        pytest.fail(f"[{fmt}] {exc}", pytrace=False)
    if not report.ok:
        if fmt == "h5" and io.holds_compile and any("optimizer" in p for p in report.problems):
            report.notes.append("Keras 3's legacy HDF5 loader brings back the optimizer's "
                                "iteration count and learning rate only (its slots stay in "
                                "the file's optimizer_weights group): resume from .keras or a "
                                "checkpoint")
        pytest.fail(report.text(), pytrace=False)
    return report
