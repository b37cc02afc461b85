"""Support tickets -> churn: a text model with a TextVectorization and StringLookup front end.

The model takes a dict of named inputs, as models served behind a JSON API do::

    {"ticket": ["my bill doubled again"], "plan": ["basic"], "tenure_months": [[3.0]]}

`TextVectorization` learns its vocabulary from the tickets (``adapt``: state, not
configuration), while `StringLookup` gets the plan names in its constructor (configuration:
a rebuilt model has them too).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

PLANS = ("basic", "plus", "family", "business")
_WORDS = {
    "angry": ("bill doubled again", "cancel my account now", "internet keeps dropping",
              "nobody answers support", "too expensive switching provider"),
    "calm": ("thanks for the quick fix", "how do i add a device", "great service today",
             "please update my address", "question about my invoice"),
}


def make_tickets(n: int = 64, *, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """`n` synthetic tickets (inputs dict, churn labels); the same seed, the same arrays."""
    rng = np.random.default_rng(seed)
    angry = rng.random(n) < 0.5
    texts = [rng.choice(_WORDS["angry" if a else "calm"]) for a in angry]
    inputs = {
        "ticket": np.array(texts),
        "plan": rng.choice(PLANS, n),
        "tenure_months": rng.integers(1, 72, (n, 1)).astype("float32"),
    }
    return inputs, angry.astype("float32").reshape(-1, 1)


def build_ticket_model(vocabulary_source: np.ndarray | None = None) -> keras.Model:
    """The ticket model; `vocabulary_source` (ticket texts) adapts its vocabulary.

    Without it the TextVectorization has an empty vocabulary: what a weights-only restore
    must fill (and cannot, in Keras' weights files: see tests/test_tickets_and_horizons.py).
    """
    vectorize = keras.layers.TextVectorization(max_tokens=64, output_sequence_length=6,
                                               name="vectorize")
    if vocabulary_source is not None:
        vectorize.adapt(vocabulary_source)
    ticket = keras.Input((), dtype="string", name="ticket")
    plan = keras.Input((), dtype="string", name="plan")
    tenure = keras.Input((1,), name="tenure_months")
    words = keras.layers.GlobalAveragePooling1D()(
        keras.layers.Embedding(64, 8, name="embed_words")(vectorize(ticket)))
    plan_ids = keras.layers.StringLookup(vocabulary=list(PLANS), name="plan_lookup")(plan)
    plans = keras.layers.Embedding(len(PLANS) + 1, 2, name="embed_plan")(plan_ids)
    scaled = keras.layers.Rescaling(1 / 72, name="tenure_scale")(tenure)
    h = keras.layers.Concatenate()([words, plans, scaled])
    h = keras.layers.Dense(8, activation="relu", name="hidden")(h)
    out = keras.layers.Dense(1, activation="sigmoid", name="churn_probability")(h)
    return keras.Model({"ticket": ticket, "plan": plan, "tenure_months": tenure}, out,
                       name="ticket_model")


def train_ticket_model(epochs: int = 3, *, seed: int = 0) -> keras.Model:
    """Adapt on the training tickets and fit: the same weights every run."""
    inputs, labels = make_tickets(seed=seed)
    keras.utils.set_random_seed(seed)
    model = build_ticket_model(inputs["ticket"])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy",
                  jit_compile=False)
    # Keras' array adapter refuses numpy str arrays; a dataset takes them as tf.string.
    data = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(16)
    model.fit(data, epochs=epochs, shuffle=False, verbose=0)
    return model
