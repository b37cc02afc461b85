"""Keras 2 models, trained: `tf_keras` on TF 2.16+, TF 2.15's own `tf.keras` (Keras 2.15).

Sequential with BatchNormalization, a two-output Functional, a subclassed model and a registered
custom layer. Each builder returns a fresh untrained model (the `build=` of a restore); `trained`
fits one for a few steps so BatchNormalization's moving statistics and every weight differ
from a fresh build.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_modelpersist._tf import import_tensorflow

PACKAGE = "modelpersist_k2tests"


def keras2() -> Any:
    """The Keras 2 package here: `keras` itself when it is 2.x (TF 2.15), else `tf_keras`.

    With ``TF_USE_LEGACY_KERAS=1`` (TF 2.16+) `tf.keras` is this same `tf_keras`.
    """
    import_tensorflow()
    import keras

    if keras.__version__.startswith("2."):
        return keras
    import tf_keras

    return tf_keras


def _registered(name: str) -> Any:
    return keras2().saving.get_registered_object(f"{PACKAGE}>{name}")


def scale_layer() -> Any:
    """A registered custom layer with one trainable weight per feature and a config."""
    if (found := _registered("Scale")) is not None:
        return found
    keras = keras2()

    @keras.saving.register_keras_serializable(package=PACKAGE)
    class Scale(keras.layers.Layer):
        def __init__(self, init: float = 1.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.init = init

        def build(self, input_shape: Any) -> None:
            self.scale = self.add_weight(
                name="scale", shape=(input_shape[-1],),
                initializer=keras.initializers.Constant(self.init))
            super().build(input_shape)

        def call(self, x: Any) -> Any:
            return x * self.scale

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "init": self.init}

    return Scale


def forgetful_layer() -> Any:
    """A registered layer whose get_config forgets a required constructor argument."""
    if (found := _registered("Forgetful")) is not None:
        return found
    keras = keras2()

    @keras.saving.register_keras_serializable(package=PACKAGE)
    class Forgetful(keras.layers.Layer):
        def __init__(self, factor: float, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x: Any) -> Any:
            return x * self.factor

        def get_config(self) -> dict[str, Any]:
            return super().get_config()  # `factor` is missing: from_config cannot rebuild it

    return Forgetful


def _tiny_net_class() -> Any:
    if (found := _registered("TinyNet2")) is not None:
        return found
    keras = keras2()
    scale = scale_layer()

    @keras.saving.register_keras_serializable(package=PACKAGE)
    class TinyNet2(keras.Model):
        def __init__(self, units: int = 3, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.units = units
            self.scale = scale(init=0.5)
            self.hidden = keras.layers.Dense(6, activation="relu")
            self.head = keras.layers.Dense(units)

        def call(self, x: Any) -> Any:
            return self.head(self.hidden(self.scale(x)))

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "units": self.units}

    return TinyNet2


def sequential_bn(n_in: int = 4) -> Any:
    keras = keras2()
    return keras.Sequential([
        keras.Input((n_in,)),
        keras.layers.Dense(8, activation="relu", name="d1"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Dense(3, name="out"),
    ])


def two_outputs(n_in: int = 4) -> Any:
    keras = keras2()
    inp = keras.Input((n_in,), name="x")
    h = scale_layer()(name="scale")(inp)
    h = keras.layers.Dense(6, activation="tanh", name="trunk")(h)
    score = keras.layers.Dense(1, name="score")(h)
    aux = keras.layers.Dense(2, name="aux")(h)
    return keras.Model(inp, [score, aux])


def subclassed(n_in: int = 4) -> Any:
    model = _tiny_net_class()(units=3)
    model(np.zeros((1, n_in), "float32"))
    return model


def forgetful(n_in: int = 4) -> Any:
    keras = keras2()
    inp = keras.Input((n_in,), name="x")
    out = keras.layers.Dense(2, name="head")(forgetful_layer()(factor=2.0, name="f")(inp))
    return keras.Model(inp, out)


def bidirectional_gru(n_in: int = 5) -> Any:
    """Token ids -> Embedding(mask_zero) -> Bidirectional(GRU) -> Dense: its GRU weights are
    named under auto-numbered sublayers (bidirectional_1/forward_gru_1/gru_cell/kernel)."""
    keras = keras2()
    tokens = keras.Input((n_in,), dtype="int32")
    x = keras.layers.Embedding(20, 4, mask_zero=True)(tokens)
    x = keras.layers.Bidirectional(keras.layers.GRU(3))(x)
    return keras.Model(tokens, keras.layers.Dense(2)(x))


BUILDERS = {"sequential_bn": sequential_bn, "two_outputs": two_outputs, "subclassed": subclassed}


def trained(build: Any, *, seed: int = 0, n_in: int = 4) -> Any:
    """`build()`, compiled and fitted for two epochs on random data (weights and BN stats move)."""
    model = build(n_in)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, n_in)).astype("float32")
    outputs = model(x[:1])
    outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    ys = [rng.standard_normal((64, int(o.shape[-1]))).astype("float32") for o in outs]
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, ys if len(ys) > 1 else ys[0], epochs=2, batch_size=16, verbose=0)
    return model

