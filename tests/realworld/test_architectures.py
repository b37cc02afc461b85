"""Real architectures over every format: keras.applications, preprocessing layers with lookup
tables, dict and nested I/O, RNNs, attention, mixed precision, tf.Modules (architectures.py).

Each model is checked with `persist.check` (save, restore from the files alone, compare with
the original). The default run is the in-process and C API loaders over the small models;
``MODELPERSIST_REALWORLD=all`` adds the subprocess loader and the bigger keras.applications.
"""

from __future__ import annotations

import os
from typing import Any

import architectures
import pytest

from pytest_modelpersist._tf import import_keras

EVERYTHING = os.environ.get("MODELPERSIST_REALWORLD") == "all"
MODELS = {**architectures.DEFAULT, **(architectures.LARGE if EVERYTHING else {})}

pytestmark = pytest.mark.persist(
    golden=False, loaders=None if EVERYTHING else ["inprocess", "capi"])


# Genuine TensorFlow/Keras failures, each reproduced with plain TF/Keras (see the CHANGELOG of
# issue 11): expected to fail, strictly (a fix upstream makes the item fail until removed).
OPS_IN_H5 = ("Keras 3 legacy HDF5 cannot load a Functional model that calls ops on Keras "
             "tensors (x + 3.0, keras.ops.cast)")
VOCABULARY = ("an adapted vocabulary is not in Keras weights files (save_weights, "
              "tf.train.Checkpoint)")
TABLE_H5 = "legacy HDF5 loses an adapted lookup layer's table (Table not initialized)"
TABLE_CKPT = ("a TF1 checkpoint holds variables only: a rebuilt model keeps its own, unadapted "
              "vocabulary")
NORMALIZATION = ("Normalization caches its adapted mean/variance: assigning its variables "
                 "(tf.train.Checkpoint, a checkpoint by name) does not refresh them")
ADAPTED_TABLE = {"weights_h5": VOCABULARY, "tf_checkpoint": VOCABULARY, "h5": TABLE_H5,
                 "ckpt-inprocess": TABLE_CKPT}
GENUINE: dict[str, dict[str, str]] = {
    "mobilenet_v3_small": {"h5": OPS_IN_H5},
    "dict_inputs": {"h5": OPS_IN_H5},
    "attention": {"h5": "legacy HDF5 cannot load a MultiHeadAttention called on (query, "
                        "value): too many positional arguments"},
    "functional_subclass": {"h5": "legacy HDF5 does not find a registered Functional "
                                  "subclass (Unknown layer 'TinyBackbone')"},
    "normalization_adapted": {"tf_checkpoint": NORMALIZATION, "ckpt-inprocess": NORMALIZATION},
    "integer_lookup": ADAPTED_TABLE,
    "text_vectorization": ADAPTED_TABLE,
    "module_wrapping_keras": {"savedmodel-capi": "the TF1 SavedModel loader (C API) does not "
                                                 "find Keras 3 variables held by a tf.Module"},
}


# Keras 2 (TF 2.15's tf.keras) loads what Keras 3 does not (ops on Keras tensors and
# MultiHeadAttention in legacy HDF5; Normalization's statistics through load_weights; variables
# a tf.Module holds through the TF1 loader); legacy HDF5 does not apply to its adapted lookup
# layers (the item skips, saying so).
GENUINE_KERAS2: dict[str, dict[str, str]] = {
    "functional_subclass": GENUINE["functional_subclass"],
    "normalization_adapted": {"ckpt-inprocess": NORMALIZATION},
    "integer_lookup": {"tf_checkpoint": VOCABULARY, "ckpt-inprocess": TABLE_CKPT},
    "text_vectorization": {"tf_checkpoint": VOCABULARY, "ckpt-inprocess": TABLE_CKPT},
}
EXPECTED = GENUINE_KERAS2 if import_keras().__version__.startswith("2.") else GENUINE


def _param(name: str) -> Any:
    marks = [pytest.mark.persist(xfail=EXPECTED[name])] if name in EXPECTED else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_param(n) for n in MODELS])
def test_architecture_round_trip(persist: Any, name: str) -> None:
    builder = MODELS[name]
    model, inputs = builder(trained=True)
    persist.check(model, inputs, build=lambda: builder(trained=False))
