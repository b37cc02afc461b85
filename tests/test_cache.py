"""The session artifact cache: one save per format for a model shared by many tests."""

from __future__ import annotations

import textwrap

SHARED_MODEL_TESTS = textwrap.dedent(
    """
    import numpy as np
    import keras
    import pytest

    X = np.linspace(-1, 1, 8, dtype="float32").reshape(2, 4)

    def build():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])

    @pytest.fixture(scope="module")
    def model():
        return build()

    @pytest.mark.parametrize("i", range(10))
    @pytest.mark.persist(golden=False)
    def test_shared(persist, model, i):
        persist.check(model, X, build=build)

    @pytest.mark.persist(golden=False)
    def test_edits_its_artifact(persist, model):
        artifact = persist.save(model, inputs=X)
        for path in artifact.files:
            if path.name.endswith((".keras", ".index")):
                path.write_bytes(path.read_bytes())  # same bytes, new mtime: not trusted

    @pytest.mark.persist(golden=False)
    def test_after_edit(persist, model):
        persist.check(model, X, build=build)

    @pytest.mark.persist(golden=False)
    def test_other_weights(persist, model):
        other = build()
        other.set_weights([w + 1 for w in model.get_weights()])
        persist.check(other, X, build=build)
    """
)


def test_ten_tests_sharing_a_model_save_once_per_format(pytester):
    pytester.makepyfile(test_cachedemo=SHARED_MODEL_TESTS)
    result = pytester.runpytest("--persist-formats=ckpt,keras,savedmodel", "-p",
                                "no:randomly")
    result.assert_outcomes(passed=39)
    # per format: 1 save for the 10 tests (+9 reuses), the edit test reuses (+1), the test
    # after the edit saves anew (+1: the files were touched), other weights save (+1).
    result.stdout.fnmatch_lines([
        "artifacts: 9 saved, 30 reused from the session cache "
        "(ckpt 3+10, keras 3+10, savedmodel 3+10)",
    ])


def test_no_cache_option_saves_every_time(pytester):
    pytester.makepyfile(test_cachedemo=SHARED_MODEL_TESTS)
    result = pytester.runpytest("--persist-formats=keras", "--persist-no-cache", "-k", "shared")
    result.assert_outcomes(passed=10)
    assert "reused from the session cache" not in result.stdout.str()


# ---- unit tests of ArtifactCache (no pytest run) ---------------------------------------------


def test_cache_lookup_store_and_edit_detection(tmp_path):
    from pytest_modelpersist.cache import ArtifactCache
    from pytest_modelpersist.formats.base import Artifact

    cache = ArtifactCache(tmp_path)
    directory = cache.directory("h5", "k" * 20)
    assert directory.is_dir() and cache.directory("h5", "k" * 20) != directory  # never reused
    path = directory / "model.h5"
    path.write_bytes(b"x" * 10)
    artifact = Artifact("h5", path, directory, "keras")
    assert cache.lookup("h5", "k") is None
    cache.store("h5", "k", artifact)
    assert cache.lookup("h5", "k") is artifact and cache.lookup("pb", "k") is None
    import os

    os.utime(path, ns=(1, 1))  # the files changed: the entry is dropped, the caller saves again
    assert cache.lookup("h5", "k") is None and cache.lookup("h5", "k") is None
    cache.store("h5", "k2", artifact)
    assert cache.summary() == {"saves": {"h5": 2}, "hits": {"h5": 1}}


def test_cache_fingerprint_follows_weights_and_input_signature():
    import numpy as np

    from pytest_modelpersist.cache import fingerprint

    import model_zoo

    x = np.ones((2, 4), np.float32)
    model = model_zoo.functional()
    before = fingerprint(model, x)
    assert fingerprint(model, np.zeros((5, 4), np.float32)) == before  # batch size ignored
    assert fingerprint(model, np.ones((2, 4), np.float64)) != before
    weights = model.get_weights()
    model.set_weights([w + 1 for w in weights])
    assert fingerprint(model, x) != before
    model.set_weights(weights)
    assert fingerprint(model, x) == before


FAILING_SAVE = '''
import pytest
from pytest_modelpersist import BaseFormat

class DiskFull(BaseFormat):
    name = "disk_full"
    kinds = frozenset({"keras", "keras2"})  # keras2: TF 2.15's own tf.keras
    description = "a format whose save always fails (the disk is full)"

    def save(self, model, directory, *, inputs):
        with open(SAVES, "a") as f:
            f.write("save\\n")
        raise OSError(28, "No space left on device", str(directory / "model.bin"))

    def restore(self, artifact, options):
        raise AssertionError("never reached")

def pytest_modelpersist_register_formats(registry):
    registry.register(DiskFull())
'''


def test_a_failed_save_is_reported_once_per_item_not_redone(pytester):
    saves = pytester.path / "saves.txt"
    pytester.makeconftest(f"SAVES = {str(saves)!r}\n" + FAILING_SAVE)
    pytester.makepyfile("""
        import numpy as np
        import pytest
        import keras

        @pytest.fixture(scope="module")
        def model():
            return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

        @pytest.mark.parametrize("i", range(3))
        def test_shared(persist, model, i):
            persist.check(model, np.ones((2, 3), np.float32), golden=False)
    """)
    # two loaders: the same artifact key, so the save is not redone for the other loader
    result = pytester.runpytest("--persist-formats=disk_full",
                                "--persist-loaders=inprocess,subprocess")
    result.assert_outcomes(failed=6)
    assert saves.read_text().splitlines() == ["save"]  # one real attempt for six items
    result.stdout.fnmatch_lines(["*[[]disk_full[]] save * failed: OSError: *No space left*"])
    assert result.stdout.str().count("not redone") == 5
    assert "test_shared[0-disk_full-subprocess]" in result.stdout.str()
