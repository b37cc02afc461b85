"""Every model we ship survives every persistence format that can hold it.

Each test runs once per format (``test_classifier_roundtrip[h5]``, ``...[savedmodel]``, ...);
formats that cannot hold a model kind are skipped with the reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from churnlab.models import build_baseline, build_churnnet, build_classifier, build_scorer

# Round trips in the test process; test_deployment.py runs the serving-side loaders.
pytestmark = pytest.mark.persist(loaders=["inprocess"])


def test_classifier_roundtrip(persist, classifier, batch):
    """Functional model with the custom Standardize layer."""
    persist.check(classifier, batch, build=build_classifier)


def test_baseline_roundtrip(persist, baseline, batch):
    """Sequential model (BatchNormalization's moving statistics must come back too)."""
    persist.check(baseline, batch, build=build_baseline)


def test_churnnet_roundtrip(persist, churnnet, batch):
    """Subclassed keras.Model, rebuilt from get_config/from_config."""
    persist.check(churnnet, batch, build=build_churnnet)


def test_scorer_roundtrip(persist, scorer, batch):
    """tf.Module with a signature-bound tf.function."""
    persist.check(scorer, batch, build=build_scorer)


def test_legacy_graph_roundtrip(persist, legacy_graph, build_legacy, legacy_inputs):
    """The TF1 graph + session model (Saver checkpoints, frozen pb)."""
    persist.check(legacy_graph, legacy_inputs, build=build_legacy)


@pytest.mark.persist(formats=["keras", "savedmodel"])
def test_exported_classifier_predicts_same_classes(persist, classifier, batch):
    """The two formats we hand to the serving team give the same churn decisions."""
    artifact = persist.save(classifier, inputs=batch)
    restored = persist.restore(artifact)
    (probabilities,) = restored(batch)
    expected = classifier.predict(batch, verbose=0)
    assert probabilities.shape == expected.shape
    np.testing.assert_array_equal(probabilities > 0.5, expected > 0.5)


def test_save_writes_files(persist, classifier, batch):
    """Whatever the format, a save leaves non-empty files on disk."""
    artifact = persist.save(classifier, inputs=batch)
    assert artifact.format == persist.format
    assert artifact.files, f"{persist.format} wrote no files under {artifact.directory}"
    assert all(path.exists() for path in artifact.files)
    assert artifact.bytes > 0
