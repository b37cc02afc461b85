"""The churn models we ship: Functional, Sequential, subclassed Keras, and a tf.Module scorer."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from .data import N_FEATURES
from .features import Standardize


def build_classifier(n_features: int = N_FEATURES) -> keras.Model:
    """The production model: Input -> Standardize -> Dense(16, relu) -> Dense(1, sigmoid)."""
    inputs = keras.Input(shape=(n_features,), name="features")
    x = Standardize(name="standardize")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="churn_probability")(x)
    return keras.Model(inputs, outputs, name="churn_classifier")


def build_baseline(n_features: int = N_FEATURES) -> keras.Sequential:
    """Logistic-regression baseline: batch-normalized features into one sigmoid unit."""
    return keras.Sequential(
        [
            keras.Input(shape=(n_features,)),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name="churn_baseline",
    )


@keras.saving.register_keras_serializable(package="churnlab")
class ChurnNet(keras.Model):
    """The research model: standardize, a hidden layer with dropout, a sigmoid head."""

    def __init__(self, n_features: int = N_FEATURES, hidden: int = 16, dropout: float = 0.1,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_features = n_features
        self.hidden = hidden
        self.dropout_rate = dropout
        self.standardize = Standardize()
        self.dense = keras.layers.Dense(hidden, activation="relu")
        self.dropout = keras.layers.Dropout(dropout)
        self.head = keras.layers.Dense(1, activation="sigmoid")

    def call(self, inputs: Any, training: bool = False) -> Any:
        x = self.standardize(inputs)
        x = self.dense(x)
        x = self.dropout(x, training=training)
        return self.head(x)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_features": self.n_features,
            "hidden": self.hidden,
            "dropout": self.dropout_rate,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ChurnNet:
        return cls(**config)


def build_churnnet(n_features: int = N_FEATURES) -> ChurnNet:
    """A ChurnNet with its weights created (called once on a zero batch)."""
    model = ChurnNet(n_features=n_features)
    model(tf.zeros([1, n_features]))
    return model


class LinearScorer(tf.Module):
    """A dependency-free logistic scorer for the serving path: sigmoid(x @ w + b)."""

    def __init__(self, n_features: int = N_FEATURES, name: str | None = None) -> None:
        super().__init__(name=name)
        self.w = tf.Variable(tf.zeros([n_features, 1]), name="w")
        self.b = tf.Variable(tf.zeros([1]), name="b")
        self.scale = tf.Variable(tf.ones([n_features]), trainable=False, name="scale")

    @tf.function(input_signature=[tf.TensorSpec([None, N_FEATURES], tf.float32)])
    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return tf.sigmoid(tf.matmul(x / self.scale, self.w) + self.b)


def build_scorer(n_features: int = N_FEATURES) -> LinearScorer:
    """A fresh, untrained LinearScorer."""
    return LinearScorer(n_features)
