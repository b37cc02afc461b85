"""Real architectures, small: what ML repositories actually persist (see test_architectures.py).

Each builder returns ``(model, inputs)`` when called with ``trained=True`` (weights and adapted
state set, deterministic), and a fresh, untrained model of the same architecture with
``trained=False`` (what a user's ``build=`` returns: adapted preprocessing layers are NOT
adapted there, so a format that loses their vocabulary or statistics is caught).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pytest_modelpersist._tf import import_keras, import_tensorflow

Built = Any  # (model, inputs) or a model

TEXTS = np.array(["the cat sat", "a dog ran far", "the dog sat", "cats and dogs ran"])
WORDS = np.array([["cat"], ["dog"], ["bird"], ["cat"], ["fish"]])


def _seed(seed: int = 3) -> None:
    import_keras().utils.set_random_seed(seed)


def _float_mask(keras: Any, padding_mask: Any) -> Any:
    """The padding mask as float32 with a trailing axis: Keras 3's `keras.ops` on Keras
    tensors, TensorFlow's ops (wrapped as layers) in Keras 2 (TF 2.15's `keras`)."""
    ops = getattr(keras, "ops", None) or import_tensorflow()
    return ops.expand_dims(ops.cast(padding_mask, "float32"), -1)


def _result(model: Any, inputs: Any, trained: bool) -> Built:
    return (model, inputs) if trained else model


# ---- keras.applications (weights=None, 32x32 inputs) -------------------------------------


def mobilenet_v3_small(trained: bool = True) -> Built:
    keras = import_keras()
    _seed(1)
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3),
                                                classes=4, include_preprocessing=True)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    return _result(model, x, trained)


def _application(name: str) -> Callable[[bool], Built]:
    def build(trained: bool = True) -> Built:
        keras = import_keras()
        _seed(1)
        model = getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3),
                                                  classes=4)
        x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
        return _result(model, x, trained)

    build.__name__ = name.lower()
    return build


efficientnet_b0 = _application("EfficientNetB0")
resnet50 = _application("ResNet50")
densenet121 = _application("DenseNet121")


# ---- preprocessing layers ----


def normalization_adapted(trained: bool = True) -> Built:
    keras = import_keras()
    _seed()
    data = np.random.default_rng(1).normal(5.0, 3.0, (32, 4)).astype("float32")
    norm = keras.layers.Normalization()
    if trained:
        norm.adapt(data)
    else:
        norm.build((None, 4))
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2)(norm(inp)))
    return _result(model, data[:3], trained)


def string_lookup(trained: bool = True) -> Built:
    keras = import_keras()
    _seed()
    # A vocabulary given to the constructor is configuration: build() has it too.
    lookup = keras.layers.StringLookup(vocabulary=["cat", "dog", "bird"])
    inp = keras.Input((1,), dtype="string")
    ids = lookup(inp)
    out = keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Embedding(8, 3)(ids)))
    return _result(keras.Model(inp, out), WORDS, trained)


def integer_lookup(trained: bool = True) -> Built:
    keras = import_keras()
    _seed()
    lookup = keras.layers.IntegerLookup()
    lookup.adapt(np.array([10, 20, 30, 40]) if trained else np.array([99]))
    inp = keras.Input((1,), dtype="int64")
    ids = lookup(inp)
    out = keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Embedding(8, 3)(ids)))
    return _result(keras.Model(inp, out), np.array([[10], [30], [77]], np.int64), trained)


def text_vectorization(trained: bool = True) -> Built:
    keras = import_keras()
    _seed()
    vec = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=5)
    vec.adapt(TEXTS if trained else np.array(["zzz"]))
    inp = keras.Input((), dtype="string")
    h = keras.layers.Embedding(20, 4)(vec(inp))
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h))
    return _result(keras.Model(inp, out), TEXTS[:3], trained)


# ---- dict and nested I/O -------------------------------------------------------------------------


def dict_inputs(trained: bool = True) -> Built:
    """keras-hub style: {"token_ids", "padding_mask"} (keys not in the order Keras sorts)."""
    keras = import_keras()
    _seed()
    token_ids = keras.Input((6,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((6,), dtype="int32", name="padding_mask")
    h = keras.layers.Embedding(16, 4)(token_ids)
    mask = _float_mask(keras, padding_mask)
    pooled = keras.layers.GlobalAveragePooling1D()(h * mask)
    model = keras.Model({"token_ids": token_ids, "padding_mask": padding_mask},
                        keras.layers.Dense(3)(pooled))
    rng = np.random.default_rng(2)
    x = {"token_ids": rng.integers(0, 16, (2, 6)).astype("int32"),
         "padding_mask": np.array([[1] * 6, [1] * 3 + [0] * 3], "int32")}
    return _result(model, x, trained)


def dict_outputs(trained: bool = True) -> Built:
    """Named outputs whose natural and lexicographic orders differ (y2/y10, 7d/14d/28d)."""
    keras = import_keras()
    _seed()
    inp = keras.Input((4,), name="x")
    h = keras.layers.Dense(8, activation="relu")(inp)
    names = ["y2", "y10", "horizon_7d", "horizon_14d", "horizon_28d"]
    outs = {n: keras.layers.Dense(i + 1, name=n)(h) for i, n in enumerate(names)}
    x = np.random.default_rng(3).standard_normal((3, 4)).astype("float32")
    return _result(keras.Model(inp, outs), x, trained)


def nested_outputs(trained: bool = True) -> Built:
    """Outputs [a, (b, c)] of different shapes."""
    keras = import_keras()
    _seed()
    inp = keras.Input((4,))
    h = keras.layers.Dense(6)(inp)
    a = keras.layers.Dense(1)(h)
    b = keras.layers.Dense(2)(h)
    c = keras.layers.Dense(3)(h)
    x = np.random.default_rng(4).standard_normal((2, 4)).astype("float32")
    return _result(keras.Model(inp, [a, (b, c)]), x, trained)


class _Backbone:
    """A keras-hub-like Functional subclass (keras_hub.models.Backbone builds this way)."""

    cls: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls.cls is not None:
            return cls.cls
        keras = import_keras()

        @keras.saving.register_keras_serializable(package="modelpersist_realworld")
        class TinyBackbone(keras.Model):
            def __init__(self, vocabulary_size: int = 16, hidden_dim: int = 4,
                         **kwargs: Any) -> None:
                token_ids = keras.Input((None,), dtype="int32", name="token_ids")
                padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
                h = keras.layers.Embedding(vocabulary_size, hidden_dim)(token_ids)
                mask = _float_mask(keras, padding_mask)
                out = keras.layers.Dense(hidden_dim)(h * mask)
                super().__init__(inputs={"token_ids": token_ids,
                                         "padding_mask": padding_mask},
                                 outputs=out, **kwargs)
                self.vocabulary_size, self.hidden_dim = vocabulary_size, hidden_dim

            def get_config(self) -> dict[str, Any]:
                return {"vocabulary_size": self.vocabulary_size,
                        "hidden_dim": self.hidden_dim, "name": self.name,
                        "trainable": self.trainable}

            @classmethod
            def from_config(cls, config: dict[str, Any]) -> Any:
                return cls(**config)

        cls.cls = TinyBackbone
        return TinyBackbone


def functional_subclass(trained: bool = True) -> Built:
    _seed()
    model = _Backbone.get()()
    x = {"token_ids": np.array([[1, 2, 3, 0], [4, 5, 0, 0]], "int32"),
         "padding_mask": np.array([[1, 1, 1, 0], [1, 1, 0, 0]], "int32")}
    return _result(model, x, trained)


# ---- sequence models ----


def _sequence(layer: Callable[[], Any]) -> Callable[[bool], Built]:
    def build(trained: bool = True) -> Built:
        keras = import_keras()
        _seed()
        inp = keras.Input((5, 3))
        out = keras.layers.Dense(2)(layer()(inp))
        x = np.random.default_rng(5).standard_normal((2, 5, 3)).astype("float32")
        return _result(keras.Model(inp, out), x, trained)

    return build


def lstm(trained: bool = True) -> Built:
    return _sequence(lambda: import_keras().layers.LSTM(4))(trained)


def gru(trained: bool = True) -> Built:
    return _sequence(lambda: import_keras().layers.GRU(4))(trained)


def attention(trained: bool = True) -> Built:
    keras = import_keras()
    _seed()
    inp = keras.Input((5, 8))
    h = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(inp, inp)
    h = keras.layers.LayerNormalization()(h + inp)
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h))
    x = np.random.default_rng(6).standard_normal((2, 5, 8)).astype("float32")
    return _result(keras.Model(inp, out), x, trained)


def mixed_precision(trained: bool = True) -> Built:
    """mixed_float16 set inside the builder (as training scripts do), restored after."""
    keras = import_keras()
    _seed()
    # global_policy/set_global_policy: Keras 2's names, aliases in Keras 3
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inp = keras.Input((4,))
        h = keras.layers.Dense(8, activation="relu")(inp)
        out = keras.layers.Dense(2, dtype="float32")(h)  # float32 head, as the guide says
        model = keras.Model(inp, out)
    finally:
        keras.mixed_precision.set_global_policy(before)
    x = np.random.default_rng(7).standard_normal((3, 4)).astype("float32")
    return _result(model, x, trained)


# ---- tf.Modules ----


def module_wrapping_keras(trained: bool = True) -> Built:
    tf = import_tensorflow()
    keras = import_keras()
    _seed()

    class Wrapper(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x: Any) -> Any:
            return self.net(x)

    x = np.random.default_rng(8).standard_normal((2, 4)).astype("float32")
    return _result(Wrapper(), x, trained)


def module_shared_params(trained: bool = True) -> Built:
    """Variables reachable by two attribute paths (self.w and self.params[0])."""
    tf = import_tensorflow()

    class Shared(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            rng = np.random.default_rng(9 if trained else 10)
            self.w = tf.Variable(rng.standard_normal((4, 2)).astype("float32"), name="w")
            self.b = tf.Variable(tf.zeros([2]), name="b")  # untrained: zeros in both builds
            self.params = [self.w, self.b]

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x: Any) -> Any:
            return tf.matmul(x, self.w) + self.b

    x = np.random.default_rng(11).standard_normal((2, 4)).astype("float32")
    return _result(Shared(), x, trained)


def module_x_offset(trained: bool = True) -> Built:
    """__call__(x, offset): positional inputs whose names do not sort in call order."""
    tf = import_tensorflow()

    class Offset(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            w = np.random.default_rng(12 if trained else 13).standard_normal((3, 2))
            self.w = tf.Variable(w.astype("float32"), name="w")

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32),
                                      tf.TensorSpec([None, 2], tf.float32)])
        def __call__(self, x: Any, offset: Any) -> Any:
            return tf.matmul(x, self.w) + offset

    rng = np.random.default_rng(14)
    inputs = [rng.standard_normal((2, 3)).astype("float32"),
              rng.standard_normal((2, 2)).astype("float32")]
    return _result(Offset(), inputs, trained)


#: name -> builder; the default suite (fast on 2 CPU cores).
DEFAULT = {
    "mobilenet_v3_small": mobilenet_v3_small,
    "normalization_adapted": normalization_adapted,
    "string_lookup": string_lookup,
    "integer_lookup": integer_lookup,
    "text_vectorization": text_vectorization,
    "dict_inputs": dict_inputs,
    "dict_outputs": dict_outputs,
    "nested_outputs": nested_outputs,
    "functional_subclass": functional_subclass,
    "lstm": lstm,
    "gru": gru,
    "attention": attention,
    "mixed_precision": mixed_precision,
    "module_wrapping_keras": module_wrapping_keras,
    "module_shared_params": module_shared_params,
    "module_x_offset": module_x_offset,
}
#: Bigger keras.applications (MODELPERSIST_REALWORLD=all): seconds each to build and trace.
LARGE = {"efficientnet_b0": efficientnet_b0, "resnet50": resnet50, "densenet121": densenet121}
