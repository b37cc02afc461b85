"""Short training runs: enough steps that the weights are trained, not initial values."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .data import ChurnData, make_churn_data
from .features import standardize_layers


def train_fresh(build: Any, epochs: int = 2, *, seed: int = 0) -> Any:
    """Build a model with seeded initial weights and train it: the same weights every run."""
    keras.utils.set_random_seed(seed)
    return train(build(), epochs, seed=seed)


def train(model: Any, epochs: int = 2, *, data: ChurnData | None = None, seed: int = 0) -> Any:
    """Fit `model` (a Keras model or a LinearScorer) on churn data; returns the model."""
    data = make_churn_data(seed=seed) if data is None else data
    keras.utils.set_random_seed(seed)
    if isinstance(model, keras.Model):
        for layer in standardize_layers(model):
            layer.adapt(data.x)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy",
                      metrics=["accuracy"], jit_compile=False)
        model.fit(data.x, data.y, epochs=epochs, batch_size=32, shuffle=True, verbose=0)
        return model
    return _train_module(model, data, epochs)


def _train_module(scorer: Any, data: ChurnData, epochs: int) -> Any:
    """Plain gradient descent on a tf.Module's trainable variables (log loss)."""
    scorer.scale.assign(np.maximum(np.abs(data.x).max(axis=0), 1e-6))
    optimizer = keras.optimizers.Adam(5e-2)
    x, y = tf.constant(data.x), tf.constant(data.y)
    for _ in range(epochs * 10):
        with tf.GradientTape() as tape:
            p = tf.clip_by_value(scorer(x), 1e-6, 1.0 - 1e-6)
            loss = -tf.reduce_mean(y * tf.math.log(p) + (1.0 - y) * tf.math.log(1.0 - p))
        grads = tape.gradient(loss, scorer.trainable_variables)
        optimizer.apply_gradients(zip(grads, scorer.trainable_variables))
    return scorer
