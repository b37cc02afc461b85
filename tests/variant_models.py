"""Models for the restore-variant tests: renamed, re-scoped, re-headed versions of a model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_modelpersist import GraphModel
from pytest_modelpersist._tf import import_keras, import_tensorflow

from model_zoo import randomize, weight_path


def seed_graph(values: Sequence[float] = (1.0, 2.0), names: Sequence[str] = ("v1", "v2"),
               scope: str | None = None) -> GraphModel:
    """Seed 003's graph: two variables (named as asked, optionally under a scope) and add.

    ``seed_graph(names=("other-v1", "other-v2"))`` is the article's renamed model.
    """
    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        def make() -> list[Any]:
            return [tf.compat.v1.Variable([float(v)], name=n)
                    for v, n in zip(values, names, strict=True)]

        if scope:
            with tf.compat.v1.variable_scope(scope):
                made = make()
        else:
            made = make()
        x = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
        add = tf.add(made[0], made[1], name="add")
        y = tf.multiply(add, x, name="y")
        init = tf.compat.v1.global_variables_initializer()
    session = tf.compat.v1.Session(graph=graph)
    session.run(init)
    return GraphModel(session, inputs=[x], outputs=[add, y])


def graph_values(model: GraphModel) -> dict[str, np.ndarray]:
    """Variable op name -> current value of a graph model."""
    variables = model.graph_variables()
    values = model.session.run(variables)
    return {v.op.name: np.asarray(val) for v, val in zip(variables, values, strict=True)}


def mlp(names: Sequence[str] = ("enc", "head"), units: Sequence[int] = (5, 2),
        n_in: int = 4, seed: int | None = None) -> Any:
    """A Functional Dense stack with explicit layer names (what a production model has)."""
    keras = import_keras()
    inp = keras.Input((n_in,), name="x")
    h = inp
    for i, (name, n) in enumerate(zip(names, units, strict=True)):
        last = i == len(units) - 1
        h = keras.layers.Dense(n, activation=None if last else "relu", name=name)(h)
    model = keras.Model(inp, h)
    if seed is not None:
        randomize(model, seed)
    return model


def keras_values(model: Any) -> dict[str, np.ndarray]:
    """Keras variable path (``enc/kernel``) -> current value."""
    return {weight_path(v): np.array(v.numpy()) for v in model.weights}


class Pair:
    """A tf.Module holding two eager variables named like seed 003's (v1, v2)."""

    def __new__(cls, v1: float = 0.0, v2: float = 0.0) -> Any:
        tf = import_tensorflow()

        class SeedPair(tf.Module):
            def __init__(self) -> None:
                super().__init__()
                self.v1 = tf.Variable([v1], name="v1")
                self.v2 = tf.Variable([v2], name="v2")

            @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32)])
            def __call__(self, x: Any) -> Any:
                return (self.v1 + self.v2) * x

        return SeedPair()
