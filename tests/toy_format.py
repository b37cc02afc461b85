"""The toy third-party format the pytester tests register from a conftest (no TensorFlow)."""

from __future__ import annotations

import textwrap

# A toy format for a toy model: exercises the wiring without TensorFlow work.
TOY_CONFTEST = textwrap.dedent(
    """
    import json
    from pytest_modelpersist import Artifact, BaseFormat, Restored

    class Doubler:
        def __init__(self, k):
            self.k = k
        def __call__(self, x):
            return x * self.k

    class JsonFormat(BaseFormat):
        name = "toy_json"
        kinds = frozenset({"other"})
        description = "a toy format that stores a Doubler's factor as JSON"

        def unsupported(self, model, info):
            return None if isinstance(model, Doubler) else "toy_json holds Doublers only"

        def save(self, model, directory, *, inputs):
            path = directory / "model.json"
            path.write_text(json.dumps({"k": model.k}))
            return Artifact(self.name, path, directory, "other")

        def restore(self, artifact, options):
            model = Doubler(json.loads(artifact.path.read_text())["k"])
            return Restored(artifact, model, lambda args: [model(args[0])], how="json")

    def pytest_modelpersist_register_formats(registry):
        registry.register(JsonFormat())
    """
)
