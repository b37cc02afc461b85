"""The artifact cache shared by pytest-xdist workers (shared_cache.py): real workers, real TF.

Each pytester run here starts two workers that import TensorFlow: keep them few and tiny.
The tests of one module run on one worker, the other module's on the other (--dist loadfile);
every test logs its worker, so a test can tell that both workers took part.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from test_cache import FAILING_SAVE

HELPER = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    import keras
    import numpy as np

    X = np.linspace(-1, 1, 8, dtype="float32").reshape(2, 4)
    HERE = Path(__file__).parent

    def build(seed=0):
        keras.utils.set_random_seed(seed)
        # named: an automatic name (dense_3) depends on what the worker built before
        return keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3, name="d")],
                                name="m")

    def log(group):
        with open(HERE / "workers.txt", "a") as f:
            f.write(f"{os.environ['PYTEST_XDIST_WORKER']} {group}\\n")

    def wait_for(name):
        for _ in range(600):  # the other worker's test first (it may still import TF)
            if (HERE / name).exists():
                return
            time.sleep(0.2)
    """
)

# Two modules, each on a worker of its own (--dist loadfile): the same model, a test of each
# that the other's test waits for.
MODULE_A = textwrap.dedent(
    """
    import pytest
    from helper import HERE, X, build, log

    @pytest.mark.parametrize("i", range(3))
    def test_a(persist, i):
        log("a")
        persist.check(build(), X, golden=False)

    @pytest.mark.persist(formats="keras")
    def test_damages_its_artifact(persist):
        artifact = persist.save(build(1), inputs=X)
        artifact.path.write_bytes(b"not a keras file")  # shared with the other worker
        (HERE / "damaged").touch()
    """
)
MODULE_B = textwrap.dedent(
    """
    import pytest
    from helper import X, build, log, wait_for

    @pytest.mark.parametrize("i", range(3))
    def test_b(persist, i):
        log("b")
        persist.check(build(), X, golden=False)  # a model of its own, the same key

    @pytest.mark.persist(formats="keras")
    def test_after_damage(persist):
        wait_for("damaged")
        persist.check(build(1), X, golden=False)
    """
)


def _suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(helper=HELPER, test_one=MODULE_A, test_two=MODULE_B)


def _workers(pytester: pytest.Pytester) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for line in (pytester.path / "workers.txt").read_text().splitlines():
        worker, group = line.split()
        found.setdefault(group, set()).add(worker)
    return found


@pytest.mark.heavy
def test_workers_share_one_save_per_key_and_its_failure(pytester):
    saves = pytester.path / "saves.txt"
    pytester.makeconftest(f"SAVES = {str(saves)!r}\n" + FAILING_SAVE)
    _suite(pytester)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadfile", "-p",
                                           "no:cacheprovider", "-p", "no:randomly",
                                           "--persist-formats=keras,h5,disk_full")
    # keras and h5: 6 + 6 passed, the damage tests 2; disk_full: 6 items, every one failed
    result.assert_outcomes(passed=14, failed=6)
    workers = _workers(pytester)
    assert len(workers["a"]) == len(workers["b"]) == 1 and workers["a"] != workers["b"]
    # one save per key over both workers: h5 1 (+5 reused); keras 1 (+5) for build(0), and
    # build(1) twice: saved, damaged by its test, found changed by the other, saved again
    result.stdout.fnmatch_lines([
        "artifacts: 4 saved, 10 reused from the session cache (h5 1+5, keras 3+5)",
        "artifact cache: shared artifact * changed after it was published "
        "(model.keras has other bytes): saved again",
    ])
    assert saves.read_text().splitlines() == ["save"]  # the failing save: one attempt in all
    assert result.stdout.str().count("not redone") == 5
    result.stdout.fnmatch_lines(["*[[]disk_full[]] save * failed: OSError: *No space left*"])


ELSEWHERE = """
import pytest

@pytest.hookimpl(trylast=True)
def pytest_configure_node(node):
    given = node.workerinput["modelpersist_cache"]
    if node.gateway.id == "gw0":
        given["host"] = "build-agent-7"  # a worker on another machine
    else:
        given["dir"] = given["dir"] + "-not-here"  # the directory is not visible there
"""


@pytest.mark.heavy
def test_workers_elsewhere_keep_a_cache_each(pytester):
    pytester.makeconftest(ELSEWHERE)
    _suite(pytester)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadfile", "-p",
                                           "no:cacheprovider", "-k", "not damage",
                                           "--persist-formats=keras")
    result.assert_outcomes(passed=6)
    assert all(len(w) == 1 for w in _workers(pytester).values())
    result.stdout.fnmatch_lines([
        "artifacts: 2 saved, 4 reused from the session cache (keras 2+4)",
        "artifact cache: artifacts are saved per worker (gw0): it runs on *, the controller "
        "on build-agent-7",
        "artifact cache: artifacts are saved per worker (gw1): *-not-here is not visible here*",
    ])


# ---- the store itself, two workers' views in one process (real files) -------------------------


def _store(tmp_path, worker):
    from pytest_modelpersist.shared_cache import SharedStore

    return SharedStore(tmp_path, worker)


def _publish(tmp_path, key="k"):
    from pytest_modelpersist.formats.base import Artifact

    with _store(tmp_path, "gw0").locked("h5", key) as entry:
        assert entry.read() is None
        directory = entry.new_directory()
        (directory / "model.h5").write_bytes(b"x" * 100)
        artifact = Artifact("h5", directory / "model.h5", directory, "keras")
        artifact.write_manifest()
        entry.publish(artifact)
    return artifact


def test_a_published_entry_is_verified_before_another_worker_uses_it(tmp_path):
    artifact = _publish(tmp_path)
    with _store(tmp_path, "gw1").locked("h5", "k") as entry:
        found = entry.read()
        assert found.path == artifact.path and found.format == "h5" and not entry.notes
    with _store(tmp_path, "gw1").locked("h5", "other key") as entry:
        assert entry.read() is None  # same store, another key
    artifact.path.write_bytes(b"y" * 100)  # same size, other bytes
    with _store(tmp_path, "gw1").locked("h5", "k") as entry:
        assert entry.read() is None
        assert "model.h5 has other bytes" in entry.notes[0]
        assert entry.new_directory() != artifact.directory  # saved anew beside it
    (artifact.directory / "extra.py").write_text("import os")
    with _store(tmp_path, "gw1").locked("h5", "k") as entry:
        assert entry.read() is None and "files added or removed" in entry.notes[0]


def test_a_failed_save_is_published_and_an_unreadable_record_is_not_trusted(tmp_path):
    with _store(tmp_path, "gw0").locked("pb", "k") as entry:
        entry.fail("[pb] save failed: OSError: disk full")
    with _store(tmp_path, "gw1").locked("pb", "k") as entry:
        assert entry.read() == "[pb] save failed: OSError: disk full"
    record = entry.record
    doc = json.loads(record.read_text())
    assert doc["worker"] == "gw0" and doc["key"] == "k"
    record.write_text("{half a record")
    with _store(tmp_path, "gw1").locked("pb", "k") as entry:
        assert entry.read() is None and "unreadable" in entry.notes[0]


def test_a_directory_others_can_enter_is_not_shared(tmp_path):
    from pytest_modelpersist.shared_cache import private_dir_problem

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    assert private_dir_problem(shared) is None
    shared.chmod(0o755)
    assert "open to other users (mode 755)" in private_dir_problem(shared)
    link = tmp_path / "link"
    link.symlink_to(shared)
    assert "not a directory" in private_dir_problem(link)


def test_a_model_known_only_by_its_identity_is_not_shared():
    import numpy as np
    import tensorflow as tf

    from pytest_modelpersist.cache import cache_key

    class Scale(tf.Module):
        def __init__(self):
            self.w = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def __call__(self, x):
            return x * self.w

    x = np.ones((2, 3), np.float32)
    module = Scale()
    assert cache_key(module, x, {}, strong=True) is None
    assert cache_key(module, x, {}) == cache_key(module, x, {})  # this process only
    import model_zoo

    model = model_zoo.functional()
    strong = cache_key(model, np.ones((2, 4), np.float32), {}, strong=True)
    assert strong is not None and strong != cache_key(model, np.ones((2, 4), np.float32), {})
