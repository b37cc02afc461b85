"""check_training's engine (issue 16) with real Keras training, real files, exact on CPU."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_modelpersist.training import (
    TrainingCheckError,
    TrainingReport,
    check_training,
    format_io,
)

import model_zoo

keras = pytest.importorskip("keras")
#: TF 2.15's `keras` is Keras 2: other slot names, and its legacy HDF5 keeps the optimizer.
KERAS2 = keras.__version__.startswith("2.")


def slot(weight: str, which: str) -> str:
    """An Adam slot as the report names it: Keras 3 ``dense_kernel_momentum``, Keras 2
    ``m/dense/kernel`` (`which` is ``momentum`` or ``velocity``)."""
    if KERAS2:
        return f"{which[0]}/{weight}"
    return f"{weight.replace('/', '_')}_{which}"


def build(*, norm: bool = False, dropout: bool = False, loss: str = "binary_crossentropy",
          compiled: bool = True) -> Any:
    inputs = keras.Input((4,), name="x")
    h = keras.layers.Normalization(name="norm")(inputs) if norm else inputs
    h = keras.layers.Dense(8, activation="relu", name="dense")(h)
    if dropout:
        h = keras.layers.Dropout(0.3, name="drop")(h)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="probs")(h))
    if compiled:
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, metrics=["accuracy"])
    return model


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 4)).astype("float32") * 3 + 1
    return x, (x.sum(axis=1) > 4).astype("float32")[:, None]


def run(fmt: str, model: Any, data: Any, tmp_path: Path, *, build_fn: Any = build,
        **kwargs: Any) -> TrainingReport:
    io = format_io(fmt, build=build_fn)
    return check_training(model, data, fmt=fmt, directory=tmp_path, save=io.save, load=io.load,
                          how=io.how, holds_compile=io.holds_compile, **kwargs)


@pytest.mark.parametrize("fmt", ["keras", "tf_checkpoint", "ckpt", "weights_h5", "h5"])
def test_correct_round_trip_resumes_exactly(fmt: str, data: Any, tmp_path: Path) -> None:
    if fmt == "h5" and not KERAS2:
        pytest.skip("Keras 3's legacy HDF5 loses the optimizer's slots "
                    "(test_legacy_h5_loses_optimizer_slots); Keras 2's keeps them")
    keras.utils.set_random_seed(1)
    model = build()
    report = run(fmt, model, data, tmp_path)
    assert report.ok, report.text()
    ours, theirs = report.losses
    assert len(ours) == 2 and ours == theirs  # exact, not close


@pytest.mark.parametrize("fmt", ["tf_checkpoint", "weights_h5", "keras"])
def test_sharded_training_state_resumes_exactly(fmt: str, data: Any, tmp_path: Path) -> None:
    """max_shard_mb reaches check_training's saves: shards (the optimizer's slots in them)
    where the format and versions can, else whole files after a PersistWarning saying why."""
    from test_sharding import why_whole

    keras.utils.set_random_seed(1)
    model = build()
    why = "a .keras archive is one zip file" if fmt == "keras" else why_whole(fmt, model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        io = format_io(fmt, build=build, max_shard_mb=0.0002)  # 209 bytes: several shards
        report = check_training(model, data, fmt=fmt, directory=tmp_path, save=io.save,
                                load=io.load, how=io.how, holds_compile=io.holds_compile)
    assert report.ok, report.text()
    assert report.losses[0] == report.losses[1]
    shards = [p.name for p in tmp_path.rglob("*") if ".data-" in p.name or (
        p.name.startswith("model_") and p.name.endswith(".weights.h5"))]
    whole = [str(w.message) for w in caught if "check_training saves whole files" in
             str(w.message)]
    if why is None:
        assert len(shards) > 2 and not whole, (shards, whole)
    else:
        assert not [n for n in shards if not n.endswith("-of-00001")], shards  # whole files
        assert whole and whole[0].startswith(f"[{fmt}] max_shard_mb asked"), whole


def test_a_bad_shard_size_fails_check_training_cleanly(tmp_path: Path) -> None:
    from pytest_modelpersist.training import check_in_test

    with pytest.raises(pytest.fail.Exception, match=r"\[keras\] max_shard_mb: expected a "
                                                    r"number of MB > 0 \(2\*\*20 bytes\), "
                                                    r"got 'big'"):
        check_in_test("keras", build(), None, directory=tmp_path, max_shard_mb="big")


def test_model_is_put_back(data: Any, tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    model = build()
    model.train_on_batch(data[0][:8], data[1][:8])
    before = [v.numpy().copy() for v in model.variables + model.optimizer.variables]
    run("keras", model, data, tmp_path)
    after = [v.numpy() for v in model.variables + model.optimizer.variables]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def _h5_without_optimizer(model: Any, directory: Path) -> Path:
    model.save(str(directory / "model.h5"), include_optimizer=False)
    return directory / "model.h5"


def test_include_optimizer_false_names_the_slots(data: Any, tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    model = build()
    report = check_training(
        model, data, fmt="h5", directory=tmp_path, save=_h5_without_optimizer,
        load=lambda path, prepare: keras.models.load_model(str(path)), how="load_model",
        holds_compile=True)
    assert not report.ok
    text = report.text()
    assert "compile configuration not restored: the restored model is not compiled" in text
    assert ("optimizer variables not restored: optimizer/iteration (2 -> 0), "
            f"optimizer/{slot('dense/kernel', 'momentum')} (max abs diff") in text
    for name in (slot("dense/kernel", "velocity"), slot("probs/bias", "momentum"),
                 slot("probs/bias", "velocity")):
        assert f"optimizer/{name}" in text
    assert "after 2 more steps on both (uninterrupted vs restored):" in text
    # step 3 starts from restored weights (same loss); its update uses the fresh optimizer
    assert "loss at step 4:" in text


def test_weights_only_save_names_the_slots(data: Any, tmp_path: Path) -> None:
    """load_weights into a model whose optimizer is not built yet (the usual resume code)
    skips the optimizer state the file holds, with only a warning."""
    keras.utils.set_random_seed(1)
    model = build()

    def save(m: Any, directory: Path) -> Path:
        m.save_weights(str(directory / "model.weights.h5"))
        return directory / "model.weights.h5"

    def load(path: Path, prepare: Any) -> Any:
        target = build()
        target.load_weights(str(path))
        return target

    report = check_training(model, data, fmt="weights_h5", directory=tmp_path, save=save,
                            load=load, how="load_weights", holds_compile=False)
    assert not report.ok
    line = next(p for p in report.problems if p.startswith("optimizer variables not restored"))
    assert "optimizer/iteration (2 -> 0)" in line
    assert f"optimizer/{slot('dense/kernel', 'momentum')}" in line
    assert f"optimizer/{slot('probs/kernel', 'velocity')}" in line
    assert not any(p.startswith("model variables not restored") for p in report.problems)


def test_legacy_h5_loses_optimizer_slots(data: Any, tmp_path: Path) -> None:
    """Keras 3 writes the slots into the file's optimizer_weights group, but load_model
    restores only the iteration count and learning rate, and the optimizer then refuses to
    train the model's variables."""
    model_zoo.keras3_only("the legacy HDF5 loader drops the optimizer's slots")
    keras.utils.set_random_seed(1)
    report = run("h5", build(), data, tmp_path)
    assert not report.ok
    assert report.problems[0].startswith("optimizer variables missing from the restored "
                                         "model: optimizer/dense_kernel_momentum, ")
    assert "optimizer/iteration" not in report.problems[0]
    assert report.problems[-1].startswith("the restored model cannot train: ValueError: "
                                          "Unknown variable")


def test_stale_normalization_statistics_name_the_layer(data: Any, tmp_path: Path) -> None:
    def build_norm() -> Any:
        return build(norm=True)

    keras.utils.set_random_seed(1)
    model = build_norm()
    model.get_layer("norm").adapt(data[0])
    report = run("tf_checkpoint", model, data, tmp_path, build_fn=build_norm)
    assert not report.ok
    assert any(p.startswith("preprocessing layer 'norm' (Normalization): mean, variance not "
                            "restored") for p in report.problems), report.text()
    # the .keras archive brings the statistics back
    (tmp_path / "k").mkdir()
    assert run("keras", model, data, tmp_path / "k", build_fn=build_norm).ok


def test_compile_configuration_is_compared(data: Any, tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    report = run("tf_checkpoint", build(), data, tmp_path,
                 build_fn=lambda: build(loss="mse"))
    assert not report.ok
    assert "compile configuration differs: loss 'binary_crossentropy' -> 'mse'" in report.problems


def test_uncompiled_build_takes_the_original_configuration(data: Any, tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    report = run("ckpt", build(), data, tmp_path, build_fn=lambda: build(compiled=False))
    assert report.ok, report.text()
    assert any("build() returned an uncompiled model" in n for n in report.notes)


def test_dropout_rng_state_is_aligned_and_noted(data: Any, tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    report = run("keras", build(dropout=True), data, tmp_path)
    assert report.ok, report.text()
    if not KERAS2:  # Keras 2's Dropout draws from TensorFlow's global seed: no state to align
        assert any(n.startswith("RNG state not restored (seed_generator") for n in report.notes)


def test_dataset_input(data: Any, tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    keras.utils.set_random_seed(1)
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(16)
    report = run("keras", build(), dataset, tmp_path, steps=3)
    assert report.ok, report.text()
    assert len(report.losses[0]) == 3
    with pytest.raises(TrainingCheckError, match="dataset of \\(x, y\\)"):
        run("keras", build(), tf.data.Dataset.from_tensor_slices(data[0]).batch(8), tmp_path)


def test_calls_that_cannot_run(data: Any, tmp_path: Path) -> None:
    with pytest.raises(TrainingCheckError, match="needs a compiled model"):
        run("keras", build(compiled=False), data, tmp_path)
    with pytest.raises(TrainingCheckError, match="the data has 3 samples; check_training needs "
                                                 "at least 4"):
        run("keras", build(), (data[0][:3], data[1][:3]), tmp_path)
    with pytest.raises(TrainingCheckError, match="tf_checkpoint holds variables only"):
        run("tf_checkpoint", build(), data, tmp_path, build_fn=None)
    with pytest.raises(KeyError, match="a frozen graph holds constants only"):
        format_io("pb", build=build)


TRAINING_TEST = '''
import keras
import numpy as np
import pytest


def build():
    inputs = keras.Input((4,), name="x")
    h = keras.layers.Dense(8, activation="relu", name="dense")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="probs")(h))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    return model


@pytest.mark.persist(formats=["keras", "h5", "savedmodel"], loaders=["inprocess"])
def test_resume(persist):
    keras.utils.set_random_seed(3)
    x = np.random.default_rng(3).standard_normal((32, 4)).astype("float32")
    report = persist.check_training(build(), (x, (x[:, :1] > 0).astype("float32")),
                                    build=build)
    assert report.losses[0] == report.losses[1]
'''


def test_check_training_through_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_resume=TRAINING_TEST)
    result = pytester.runpytest("-rs")
    if KERAS2:  # Keras 2's legacy HDF5 keeps the optimizer: training resumes from it
        result.assert_outcomes(passed=2, skipped=1)
        result.stdout.fnmatch_lines(["*SKIPPED*[[]savedmodel[]] a SavedModel holds a serving "
                                     "graph and the model's variables, not the optimizer's*"])
        return
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines([
        "*[[]h5[]] training did not resume from *model.h5 (keras.models.load_model"
        "(compile=True) of legacy HDF5):",
        "*optimizer variables missing from the restored model: "
        "optimizer/dense_kernel_momentum, *",
        "*note: Keras 3's legacy HDF5 loader brings back the optimizer's iteration count and "
        "learning rate only*",
        "*SKIPPED*[[]savedmodel[]] a SavedModel holds a serving graph and the model's "
        "variables, not the optimizer's state*",
    ])


def test_legacy_h5_save_drops_the_optimizer_of_a_later_keras_file(data: Any,
                                                                   tmp_path: Path) -> None:
    """Keras 3's legacy HDF5 save pops "optimizer" from the live model's compile config
    (keras/src/legacy/saving/saving_utils.py): a .keras file saved afterwards restores with
    Keras' default optimizer."""
    model_zoo.keras3_only("the legacy HDF5 save changes the live model's compile config")
    keras.utils.set_random_seed(1)
    model = build()
    model.save(str(tmp_path / "first.h5"))
    (tmp_path / "k").mkdir()
    report = run("keras", model, data, tmp_path / "k")
    assert not report.ok
    assert any(p.startswith("compile configuration differs: optimizer 'Adam' -> 'RMSprop'")
               for p in report.problems), report.text()


def test_a_restore_that_raises_is_reported(data: Any, tmp_path: Path) -> None:
    def wider() -> Any:
        inputs = keras.Input((4,), name="x")
        h = keras.layers.Dense(16, activation="relu", name="dense")(inputs)
        return keras.Model(inputs, keras.layers.Dense(1, name="probs")(h))

    keras.utils.set_random_seed(1)
    report = run("tf_checkpoint", build(), data, tmp_path, build_fn=wider)
    assert report.problems[0].startswith("the restore failed: ValueError: "), report.text()
