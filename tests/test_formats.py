"""Each built-in format x each model kind it applies to: real TensorFlow, real files.

These tests use the plugin's own `persist` fixture, so each runs once per format and the
inapplicable combinations are skipped with their reason.
"""

from __future__ import annotations

import numpy as np
import pytest

import model_zoo

# Round trips in this process; tests/test_loaders.py covers the other loaders.
pytestmark = pytest.mark.persist(loaders=["inprocess"])


@pytest.mark.parametrize("kind", sorted(model_zoo.KERAS_BUILDERS))
def test_keras_models_round_trip(persist, kind, x4):
    build = model_zoo.KERAS_BUILDERS[kind]
    model = model_zoo.randomize(build())
    result = persist.check(model, x4, build=build)
    assert result.format == persist.format
    assert result.artifact.files and result.artifact.bytes > 0
    # The restored model really computes: compare with the original outputs independently.
    for actual in result.actual:
        np.testing.assert_allclose(actual[0], model(x4, training=False).numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_tf_module_round_trip(persist, rng):
    model = model_zoo.module()
    x = rng.standard_normal((5, 4)).astype("float32")
    result = persist.check(model, x, build=model_zoo.module)
    np.testing.assert_allclose(result.actual[0][0], model(x).numpy(), rtol=1e-6)


def test_tf1_graph_model_round_trip(persist):
    # Saved values (3, 4) differ from what build() starts with (1, 2): a restore must fill them.
    model = model_zoo.seed_graph(3.0, 4.0)
    x = np.array([[1.0], [2.0]], np.float32)
    result = persist.check(model, x, build=model_zoo.seed_graph)
    for add, y in result.actual:
        np.testing.assert_array_equal(add, [7.0])
        np.testing.assert_array_equal(y, [[7.0], [14.0]])


def test_save_then_restore_steps(persist, x4):
    model = model_zoo.randomize(model_zoo.functional())
    artifact = persist.save(model, inputs=x4)
    assert artifact.format == persist.format
    assert all(p.exists() for p in artifact.files)
    restored = persist.restore(artifact, build=model_zoo.functional)
    np.testing.assert_allclose(restored(x4)[0], model(x4).numpy(), rtol=1e-6)
    # From the directory alone, as another process would.
    again = persist.restore(artifact.directory, build=model_zoo.functional)
    np.testing.assert_allclose(again(x4)[0], model(x4).numpy(), rtol=1e-6)


@pytest.mark.persist(formats=["ckpt"])
def test_ckpt_files_and_both_restore_paths(persist, x4):
    model = model_zoo.randomize(model_zoo.sequential())
    result = persist.check(model, x4, build=model_zoo.sequential)
    names = sorted(p.name for p in result.artifact.files)
    assert "checkpoint" in names
    assert {"model.meta", "model.index"} <= set(names)
    assert any(n.startswith("model.data-") for n in names)
    hows = [r.how for r in result.restored]
    assert hows == ["import_meta_graph + Saver.restore",
                    "tf.train.load_checkpoint into the rebuilt model"]
