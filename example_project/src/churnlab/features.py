"""Feature preprocessing layers that travel with the model (no separate scaler file)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="churnlab")
class Standardize(keras.layers.Layer):
    """(x - mean) / std per feature, with mean and std fitted once from training data.

    The statistics are non-trainable weights, so they are saved and restored with the model.
    """

    def __init__(self, epsilon: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape: Any) -> None:
        n = input_shape[-1]
        self.mean = self.add_weight(name="mean", shape=(n,), initializer="zeros",
                                    trainable=False)
        self.std = self.add_weight(name="std", shape=(n,), initializer="ones", trainable=False)

    def adapt(self, data: np.ndarray) -> None:
        """Set mean and std from `data` (rows are samples)."""
        data = np.asarray(data, dtype="float32")
        if not self.built:
            self.build(data.shape)
        self.mean.assign(data.mean(axis=0))
        self.std.assign(data.std(axis=0))

    def call(self, inputs: Any) -> Any:
        return (inputs - self.mean) / (self.std + self.epsilon)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}


def standardize_layers(model: keras.Model) -> list[Standardize]:
    """The Standardize layers of `model` (functional, sequential or subclassed)."""
    return [layer for layer in model.layers if isinstance(layer, Standardize)]
