"""What the serving team loads: no training code, a fresh process or the TensorFlow C API.

Each test runs once per format and loader (``[savedmodel-subprocess]``, ``[pb-capi]``): the
subprocess loader has only the churnlab package (pyproject: persist_subprocess_*), so a custom
layer that is not registered by the package itself is caught here, not in production.
"""

from __future__ import annotations

import numpy as np
import pytest

from churnlab.models import build_classifier


@pytest.mark.persist(formats=["keras", "savedmodel", "pb"], loaders=["subprocess", "capi"])
def test_classifier_serves_without_training_code(persist, classifier, batch):
    persist.check(classifier, batch, build=build_classifier)


@pytest.mark.persist(formats=["pb"], loaders=["inprocess"])
def test_frozen_scorer_graph_is_fully_constant(persist, scorer, batch, tmp_path):
    """The frozen graph we hand to the C# service: no variables left, readable as text."""
    frozen = persist.freeze(scorer, batch)
    assert frozen.inputs == ["x:0"]
    text = frozen.write(tmp_path / "scorer.pbtxt", as_text=True).read_text()
    assert "VarHandleOp" not in text
    (score,) = persist.restore(persist.save(scorer, inputs=batch))(batch)
    np.testing.assert_allclose(score, scorer(batch).numpy(), rtol=1e-6)
