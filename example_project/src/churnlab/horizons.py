"""Churn risk at three horizons: one model, named dict outputs.

``model(x)`` returns ``{"horizon_7d": ..., "horizon_14d": ..., "horizon_28d": ...}``: keys
whose natural order (7, 14, 28) and lexicographic order (14, 28, 7) differ, as the order
TensorFlow flattens dicts in is the lexicographic one.
"""

from __future__ import annotations

import keras
import numpy as np

from .data import N_FEATURES, make_churn_data
from .features import Standardize

HORIZONS = ("horizon_7d", "horizon_14d", "horizon_28d")


def build_horizon_model(n_features: int = N_FEATURES) -> keras.Model:
    """Standardize -> a shared hidden layer -> one sigmoid head per horizon."""
    inputs = keras.Input((n_features,), name="features")
    h = Standardize(name="standardize")(inputs)
    h = keras.layers.Dense(12, activation="relu", name="shared")(h)
    outputs = {name: keras.layers.Dense(1, activation="sigmoid", name=name)(h)
               for name in HORIZONS}
    return keras.Model(inputs, outputs, name="horizons")


def train_horizon_model(epochs: int = 2, *, seed: int = 0) -> keras.Model:
    """Train on churn labels, later horizons a little more likely: the same weights each run."""
    data = make_churn_data(seed=seed)
    keras.utils.set_random_seed(seed)
    model = build_horizon_model()
    model.get_layer("standardize").adapt(data.x)
    rng = np.random.default_rng(seed)
    labels = {name: np.maximum(data.y, (rng.random(data.y.shape) < 0.1 * i).astype("float32"))
              for i, name in enumerate(HORIZONS)}
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss={name: "binary_crossentropy" for name in HORIZONS}, jit_compile=False)
    model.fit(data.x, labels, epochs=epochs, batch_size=32, verbose=0)
    return model
