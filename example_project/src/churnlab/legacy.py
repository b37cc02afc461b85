"""The original TF1 scoring graph, kept until every consumer has moved to the Keras model.

It is the seed graph of the classic TF persistence tutorial (v1 + v2, saved with
tf.train.Saver), plus an input placeholder so it computes something per customer.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf


class LegacyGraph(NamedTuple):
    session: tf.compat.v1.Session
    x: tf.Tensor
    add: tf.Tensor
    score: tf.Tensor


def build_legacy_graph() -> LegacyGraph:
    """A fresh graph and session with v1 = [1.0], v2 = [2.0], add = v1 + v2, score = add * x."""
    graph = tf.Graph()
    with graph.as_default():
        v1 = tf.compat.v1.Variable([1.0], name="v1")
        v2 = tf.compat.v1.Variable([2.0], name="v2")
        add = tf.add(v1, v2, name="add")
        x = tf.compat.v1.placeholder(tf.float32, shape=[None], name="x")
        score = tf.multiply(add, x, name="score")
        init = tf.compat.v1.global_variables_initializer()
    session = tf.compat.v1.Session(graph=graph)
    session.run(init)
    return LegacyGraph(session, x, add, score)
