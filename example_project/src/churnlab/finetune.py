"""Fine-tuning: the churn classifier's backbone under a new head.

The retention team predicts which of three offers a customer will accept. Their model starts
from the production churn classifier: the same feature statistics (`standardize`) and hidden
layer (`hidden`), restored from the classifier we ship, under a new softmax head that they
train. Only the backbone comes from the file; the new head keeps its own initial weights.
"""

from __future__ import annotations

import keras

from .data import N_FEATURES
from .features import Standardize

#: The layers the offer model takes from the churn classifier, by name.
BACKBONE = ("standardize", "hidden")
N_OFFERS = 3


def build_offer_model(n_features: int = N_FEATURES, n_offers: int = N_OFFERS) -> keras.Model:
    """Input -> Standardize -> Dense(16, relu) (the classifier's backbone) -> Dense(3, softmax)."""
    inputs = keras.Input(shape=(n_features,), name="features")
    x = Standardize(name="standardize")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(n_offers, activation="softmax", name="offer")(x)
    return keras.Model(inputs, outputs, name="offer_model")


def backbone_features(model: keras.Model) -> keras.Model:
    """The hidden-layer features a model's head sees (a view sharing the model's weights)."""
    return keras.Model(model.input, model.get_layer("hidden").output)
