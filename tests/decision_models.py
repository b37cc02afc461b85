"""Small real models for the decision-level and converter-option tests (test_decision_plugin).

Imported by pytester test files (the tests directory is put on their sys.path), so a model is
built the same way in every run of one test.
"""

from __future__ import annotations

import os

import numpy as np
from test_conversions import wide_model  # noqa: F401 (re-exported for the test files)

from pytest_modelpersist._tf import import_keras, import_tensorflow

keras = import_keras()
tf = import_tensorflow()

X64 = np.random.default_rng(0).standard_normal((8, 64)).astype("float32")


def two_heads():
    """[logits (quantized by tflite_dynamic: 64x64 and 64x10 weights), a 64x2 head (under
    TFLite's 1024-weight threshold: left float, exact)]: outputs output_0, output_1."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((64,))
    h = keras.layers.Dense(64, activation="relu")(inp)
    return keras.Model(inp, [keras.layers.Dense(10)(h), keras.layers.Dense(2)(inp)])


def nested_heads():
    """{"logits": quantized by tflite_dynamic, "heads": [two 64x2 heads, left float]}: outputs
    named by path, logits, heads/0, heads/1."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((64,))
    h = keras.layers.Dense(64, activation="relu")(inp)
    return keras.Model(inp, {"logits": keras.layers.Dense(10)(h),
                             "heads": [keras.layers.Dense(2)(inp), keras.layers.Dense(2)(inp)]})


@keras.saving.register_keras_serializable(package="decision_tests")
class Flip(keras.layers.Layer):
    """x * sign; get_config() forgets `sign`, so a restored Flip(-1) computes x: every
    argmax becomes the argmin."""

    def __init__(self, sign=1.0, **kwargs):
        super().__init__(**kwargs)
        self.sign = sign

    def call(self, x):
        return x * self.sign

    def get_config(self):
        return super().get_config()  # the bug: no "sign" (an override turns auto-config off)


def flipping():
    keras.utils.set_random_seed(4)
    inp = keras.Input((8,))
    return keras.Model(inp, Flip(-1.0)(keras.layers.Dense(5)(inp)))


#: Rows whose class is clearly 0, 1, 2, 3 (twice each): what the golden tests decide on.
X_CLASSES = (np.tile(np.eye(4, dtype="float32") * 2.0, (2, 1))
             + np.random.default_rng(1).uniform(0, 0.1, (8, 4)).astype("float32"))


def classifier():
    """A linear classifier whose weights the PERSIST_VARIANT environment variable picks:
    ``base`` (identity), ``noise`` (identity + 1e-3 noise: every output moves, no decision
    does), ``swap`` (classes 2 and 3 swapped: half the rows decide differently)."""
    kernel = np.eye(4, dtype="float32")
    variant = os.environ.get("PERSIST_VARIANT", "base")
    if variant == "noise":
        kernel += np.random.default_rng(2).normal(0, 1e-3, (4, 4)).astype("float32")
    elif variant == "swap":
        kernel = kernel[:, [0, 1, 3, 2]]
    inp = keras.Input((4,), name="x")  # named: the golden records the interface
    dense = keras.layers.Dense(4, use_bias=False, name="scores")
    model = keras.Model(inp, dense(inp))
    dense.set_weights([kernel])
    return model


class Determinant(tf.Module):
    """MatrixDeterminant has no TFLite builtin kernel: SELECT_TF_OPS keeps it as a TF op."""

    @tf.function(input_signature=[tf.TensorSpec([None, 2, 2], tf.float32)])
    def __call__(self, m):
        return tf.linalg.det(m)


X_MATRICES = np.random.default_rng(3).standard_normal((3, 2, 2)).astype("float32")


class Gather(tf.Module):
    """GatherNd: tf2onnx writes it as a Loop below opset 11, which ONNX Runtime 1.x cannot
    type (measured: opsets 9 and 10 fail to load, 11 and the default 15 run exactly)."""

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def __call__(self, x):
        return tf.gather_nd(x, [[0, 1], [1, 2]])


X4 = np.random.default_rng(4).standard_normal((3, 4)).astype("float32")
