"""Every format catches a broken save or restore: wrong weights, a missing variable, a no-op.

A format is wrapped so that its save writes something wrong (another model's weights, a file
with a variable removed), then `persist.check` must fail with a message naming the format.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from pytest_modelpersist.formats import BUILTIN_FORMATS
from pytest_modelpersist.formats.base import BaseFormat, WrappedFormat
from pytest_modelpersist.persist import CheckOptions, Persist
from pytest_modelpersist.restoring import WholeModel, restore_with

import model_zoo

FORMATS = {cls.name: cls for cls in BUILTIN_FORMATS}


class WrongWeights(WrappedFormat):
    """Saves a different model of the same architecture: the classic wrong-weights save."""

    def __init__(self, inner: Any, impostor: Any) -> None:
        super().__init__(inner)
        self.impostor = impostor

    def save(self, model: Any, directory: Path, *, inputs: Any) -> Any:
        return self.inner.save(self.impostor, directory, inputs=inputs)


class Tampered(WrongWeights):
    """Saves the right model, then damages the files with `tamper(artifact)`."""

    def __init__(self, inner: Any, tamper: Any) -> None:
        super().__init__(inner, None)
        self.tamper = tamper

    def save(self, model: Any, directory: Path, *, inputs: Any) -> Any:
        artifact = self.inner.save(model, directory, inputs=inputs)
        self.tamper(artifact)
        return artifact


def make_persist(fmt: Any, tmp_path: Path) -> Persist:
    return Persist(fmt, tmp_path=tmp_path, options=CheckOptions())


def failure(call: Any) -> str:
    with pytest.raises(pytest.fail.Exception) as info:
        call()
    return str(info.value)


# ---- wrong weights in the file: every format, every kind it holds ------------------------

KIND_CASES = [
    ("keras", lambda: model_zoo.randomize(model_zoo.functional(), seed=1),
     lambda: model_zoo.randomize(model_zoo.functional(), seed=2), model_zoo.functional),
    ("module", model_zoo.module, model_zoo.module, model_zoo.module),
    ("graph", lambda: model_zoo.seed_graph(3.0, 4.0), lambda: model_zoo.seed_graph(5.0, 4.0),
     model_zoo.seed_graph),
]


@pytest.mark.parametrize("fmt_name", list(FORMATS))
@pytest.mark.parametrize("kind,make,make_impostor,build", KIND_CASES,
                         ids=[c[0] for c in KIND_CASES])
def test_wrong_weights_in_file_are_caught(fmt_name, kind, make, make_impostor, build, tmp_path):
    model, impostor = make(), make_impostor()
    if kind == "module":  # tf.random.normal(seed=1) repeats: make the impostor differ
        impostor.w.assign(impostor.w + 1.0)
    persist = make_persist(WrongWeights(FORMATS[fmt_name](), impostor), tmp_path)
    x = np.ones((3, 1 if kind == "graph" else 4), np.float32)
    try:
        message = failure(lambda: persist.check(model, x, build=build))
    except pytest.skip.Exception:
        pytest.skip(f"{fmt_name} does not hold {kind} models")
    assert message.startswith(f"[{fmt_name}] restored outputs differ")
    assert "max abs difference" in message and "worst element at" in message
    assert str(tmp_path) in message  # the artifact's path


# ---- a variable missing ------------------------------------------------------------------


def bigger_functional() -> Any:
    keras = model_zoo.import_keras()
    inp = keras.Input((4,), name="x")
    h = model_zoo._scale_layer_class()()(inp)
    h = keras.layers.Dense(5, activation="relu")(h)
    h = keras.layers.Dense(2)(h)
    return keras.Model(inp, keras.layers.Dense(2)(h))  # one Dense layer more than saved


@pytest.mark.parametrize("fmt_name", ["ckpt", "tf_checkpoint", "weights_h5"])
def test_variable_missing_from_file_is_named(fmt_name, tmp_path, x4):
    persist = make_persist(FORMATS[fmt_name](), tmp_path)
    artifact = persist.save(model_zoo.randomize(model_zoo.functional()), inputs=x4)
    message = failure(lambda: persist.restore(artifact, build=bigger_functional))
    assert f"[{fmt_name}] restore of {artifact.path}" in message
    assert "incomplete" in message and "missing" in message
    if fmt_name != "tf_checkpoint":  # TF's object-graph message does not use Keras paths
        # Keras 3 names the extra variable by position, Keras 2 by its (new) layer name
        extra = "layers/dense_2/vars/0" if model_zoo.keras_major() == 3 else "/kernel: not found"
        assert extra in message


def test_ckpt_meta_graph_restore_with_a_variable_missing(tmp_path):
    def drop_v2(artifact: Any) -> None:
        tf = model_zoo.import_tensorflow()
        reader = tf.train.load_checkpoint(str(artifact.directory / "model"))
        with tf.Graph().as_default() as g:
            v1 = tf.compat.v1.Variable(reader.get_tensor("v1"), name="v1")
            with tf.compat.v1.Session(graph=g) as s:
                s.run(v1.initializer)
                tf.compat.v1.train.Saver({"v1": v1}).save(s, str(artifact.directory / "model"),
                                                          write_meta_graph=False)

    persist = make_persist(Tampered(FORMATS["ckpt"](), drop_v2), tmp_path)
    message = failure(lambda: persist.check(model_zoo.seed_graph(3.0, 4.0),
                                            np.ones((2, 1), np.float32)))
    assert message.startswith("[ckpt] restore ")
    assert "v2" in message and "not found" in message


def _drop_h5_kernel(artifact: Any) -> None:
    with h5py.File(artifact.path, "r+") as f:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        del f[[n for n in names if "dense" in n][0]]


def _drop_keras_weights(artifact: Any) -> None:
    src = artifact.path
    tmp = src.with_suffix(".tmp")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w") as zout:
        for item in zin.infolist():
            if item.filename != "model.weights.h5":
                zout.writestr(item, zin.read(item.filename))
    tmp.replace(src)


def _drop_savedmodel_variables(artifact: Any) -> None:
    shutil.rmtree(artifact.path / "variables")


def _drop_pb_const(artifact: Any) -> None:
    tf = model_zoo.import_tensorflow()
    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(artifact.path.read_bytes())
    victim = next(n for n in gd.node if n.op == "Const" and n.attr["value"].tensor.tensor_shape.dim)
    gd.node.remove(victim)
    artifact.path.write_bytes(gd.SerializeToString())


@pytest.mark.parametrize("fmt_name,tamper", [
    ("h5", _drop_h5_kernel),
    ("keras", _drop_keras_weights),
    ("savedmodel", _drop_savedmodel_variables),
    ("pb", _drop_pb_const),
])
def test_full_model_file_missing_weights_fails_naming_format_and_file(fmt_name, tamper,
                                                                      tmp_path, x4):
    persist = make_persist(Tampered(FORMATS[fmt_name](), tamper), tmp_path)
    model = model_zoo.randomize(model_zoo.functional())
    message = failure(lambda: persist.check(model, x4, build=model_zoo.functional))
    assert message.startswith(f"[{fmt_name}] ")
    assert str(tmp_path) in message
    assert "failed:" in message or "differ" in message


# ---- a restore that silently loads nothing ----------------------------------------------


class NoopRestore(BaseFormat):
    name = "noop_weights"
    needs_build = True

    def save(self, model: Any, directory: Path, *, inputs: Any) -> Any:
        return FORMATS["weights_h5"]().save(model, directory, inputs=inputs)

    restore_options = frozenset({"into"})

    def restore(self, artifact: Any, options: Any) -> Any:
        # Claims success but assigns nothing: only the perturbation accounting can see it.
        return restore_with(self.name, artifact, options,
                            WholeModel(lambda target, planned: None),
                            how="a restore that does nothing")


def test_silent_noop_restore_is_caught_and_names_variables(tmp_path, x4):
    persist = make_persist(NoopRestore(), tmp_path)
    message = failure(lambda: persist.check(model_zoo.randomize(model_zoo.functional()), x4,
                                            build=model_zoo.functional))
    assert "incomplete" in message
    first = "layers/dense/vars/0" if model_zoo.keras_major() == 3 else "/scale"
    assert f"{first} (value unchanged by the restore)" in message
