"""The offer model starts from the churn classifier we ship: its backbone, not its head.

A restore that is not a plain round trip: the classifier's file goes into a different model
(same backbone layers, a new 3-way head), and only the backbone is restored. The plugin fails
the test if a backbone variable is not found in the file or does not fit; the asserts below
check that the backbone computes exactly the classifier's features and the head was left alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from churnlab.finetune import BACKBONE, backbone_features, build_offer_model


@pytest.mark.persist(formats=["ckpt", "h5", "weights_h5", "savedmodel"], loaders=["inprocess"],
                     golden=False)
def test_offer_model_starts_from_the_shipped_backbone(persist, classifier, batch):
    artifact = persist.save(classifier, inputs=batch)
    offer_model = build_offer_model()
    head_before = [w.numpy() for w in offer_model.get_layer("offer").weights]

    restored = persist.restore(artifact, into=offer_model,
                               only=[f"{layer}/" for layer in BACKBONE])

    np.testing.assert_array_equal(backbone_features(offer_model)(batch),
                                  backbone_features(classifier)(batch))
    for weight, before in zip(offer_model.get_layer("offer").weights, head_before, strict=True):
        np.testing.assert_array_equal(weight.numpy(), before)
    assert len(restored.report.restored) == 4  # mean, std, kernel, bias
    assert len(restored.report.skipped) == 2  # the new head, on purpose
    probabilities = restored(batch)[0]
    assert probabilities.shape == (len(batch), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
