"""Small real models of every kind, built fresh on each call (tests import this module)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pytest_modelpersist import GraphModel
from pytest_modelpersist._tf import import_keras, import_tensorflow


def _scale_layer_class() -> Any:
    keras = import_keras()
    registered = keras.saving.get_registered_object("modelpersist_tests>Scale")
    if registered is not None:
        return registered

    @keras.saving.register_keras_serializable(package="modelpersist_tests")
    class Scale(keras.layers.Layer):
        """A custom layer with one trainable weight per feature."""

        def build(self, input_shape: Any) -> None:
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones",
                                         name="scale")

        def call(self, x: Any) -> Any:
            return x * self.scale

    return Scale


def _subclassed_class() -> Any:
    keras = import_keras()
    registered = keras.saving.get_registered_object("modelpersist_tests>TinyNet")
    if registered is not None:
        return registered
    scale = _scale_layer_class()

    @keras.saving.register_keras_serializable(package="modelpersist_tests")
    class TinyNet(keras.Model):
        def __init__(self, units: int = 3, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.units = units
            self.scale = scale()
            self.dense = keras.layers.Dense(units)

        def call(self, x: Any) -> Any:
            return self.dense(self.scale(x))

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "units": self.units}

    return TinyNet


def numpy_dtype(v: Any) -> np.dtype:
    """A Keras variable's numpy dtype: Keras 3 gives a string, Keras 2 a `tf.DType`."""
    return np.dtype(getattr(v.dtype, "as_numpy_dtype", v.dtype))


def weight_path(v: Any) -> str:
    """A Keras variable's ``<layer>/<weight>`` path: Keras 3's `v.path`, Keras 2's name
    without the ``:0`` (``d1/kernel``)."""
    path = getattr(v, "path", None)
    return path if isinstance(path, str) else v.name.split(":")[0]


def keras_major() -> int:
    """The major version of the Keras that `import_keras()` gives (2 on TF 2.15, else 3)."""
    return int(import_keras().__version__.split(".")[0])


def keras3_only(behaviour: str) -> None:
    """Skip the calling test where `import keras` is Keras 2 (TF <= 2.15): it tests
    `behaviour`, which Keras 3 has and Keras 2 does not."""
    if keras_major() == 2:
        pytest.skip(f"Keras 3 only: {behaviour} (keras here is {import_keras().__version__})")


def randomize(model: Any, seed: int = 7) -> Any:
    """Give every float weight a non-initial value (trained-looking weights)."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.standard_normal(tuple(v.shape)).astype(numpy_dtype(v)))
    return model


def sequential(n_in: int = 4) -> Any:
    keras = import_keras()
    return keras.Sequential([keras.Input((n_in,)), keras.layers.Dense(5, activation="tanh"),
                             keras.layers.Dropout(0.2), keras.layers.Dense(3)])


def functional(n_in: int = 4) -> Any:
    keras = import_keras()
    inp = keras.Input((n_in,), name="x")
    h = _scale_layer_class()()(inp)
    h = keras.layers.Dense(5, activation="relu")(h)
    return keras.Model(inp, keras.layers.Dense(2)(h))


def subclassed(n_in: int = 4) -> Any:
    model = _subclassed_class()(units=3)
    model(np.zeros((1, n_in), "float32"))
    return model


def module(n_in: int = 4) -> Any:
    tf = import_tensorflow()

    class Affine(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            w = np.random.default_rng(3).standard_normal((n_in, 2)).astype(np.float32)
            self.w = tf.Variable(w, name="w")
            self.b = tf.Variable(tf.zeros([2]), name="b")

        @tf.function(input_signature=[tf.TensorSpec([None, n_in], tf.float32)])
        def __call__(self, x: Any) -> Any:
            return tf.nn.relu(tf.matmul(x, self.w) + self.b)

    return Affine()


def seed_graph(v1: float = 1.0, v2: float = 2.0) -> GraphModel:
    """The seed articles' graph: v1 + v2 -> add, plus an input x and y = add * x."""
    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        a = tf.compat.v1.Variable([v1], name="v1")
        b = tf.compat.v1.Variable([v2], name="v2")
        x = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
        add = tf.add(a, b, name="add")
        y = tf.multiply(add, x, name="y")
        init = tf.compat.v1.global_variables_initializer()
    session = tf.compat.v1.Session(graph=graph)
    session.run(init)
    return GraphModel(session, inputs=[x], outputs=[add, y])


KERAS_BUILDERS = {"sequential": sequential, "functional": functional, "subclassed": subclassed}
