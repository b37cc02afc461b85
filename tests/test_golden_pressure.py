"""Goldens under pressure (issue 15): no collisions, no wrong deletions, no crashes.

Each test here failed before the fix it guards. The inner test modules use
``persist.assert_golden`` on numpy values with the pb format only, so they run in a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_modelpersist import golden as gf
from pytest_modelpersist import golden_paths

ARGS = ("-p", "no:cacheprovider", "--persist-formats=pb")

COLLIDING = textwrap.dedent(
    """
    import numpy as np
    import pytest

    pytestmark = pytest.mark.persist(formats=["pb", "h5"])

    class TestA:
        def test_x(self, persist):
            persist.assert_golden(np.array([1.0]))

    class TestB:
        def test_x(self, persist):
            persist.assert_golden(np.array([2.0]))

    def test_x(persist):
        persist.assert_golden(np.array([3.0]))

    @pytest.mark.parametrize("v", [pytest.param(4.0, id="v1"), pytest.param(5.0, id="v1-"),
                                   pytest.param(6.0, id="v1--pb")])
    def test_ids(persist, v):
        persist.assert_golden(np.array([v]))

    @pytest.mark.slow
    def test_dropped_by_conftest(persist):
        persist.assert_golden(np.array([7.0]))

    @pytest.mark.persist(formats=["h5"])
    def test_narrowed(persist):
        persist.assert_golden(np.array([8.0]))
    """
)

# Drops slow tests the way many projects do: no pytest_deselected call.
RUN_SLOW_CONFTEST = textwrap.dedent(
    """
    def pytest_addoption(parser):
        parser.addoption("--run-slow", action="store_true")

    def pytest_collection_modifyitems(config, items):
        if not config.getoption("--run-slow"):
            items[:] = [i for i in items if "slow" not in i.keywords]
    """
)


def _files(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir()) if p.is_file()}


def _store(pytester: pytest.Pytester, module: str = "test_coll") -> Path:
    return pytester.path / "goldens" / module


def test_goldens_of_classes_and_ids_never_collide(pytester):
    pytester.makepyfile(test_coll=COLLIDING)
    pytester.makeconftest(RUN_SLOW_CONFTEST)
    update = pytester.runpytest(*ARGS[:2], "--persist-formats=pb,h5", "--update-golden",
                                "--run-slow")
    update.assert_outcomes(passed=15)
    store = _store(pytester)
    docs = {json.loads(p.read_text())["test"]: p.name for p in gf.goldens_in(store)}
    assert docs == {
        "test_coll.py::TestA::test_x": "TestA.test_x.golden.json",
        "test_coll.py::TestB::test_x": "TestB.test_x.golden.json",
        "test_coll.py::test_x": "test_x.golden.json",
        "test_coll.py::test_ids[v1]": "test_ids[v1].golden.json",
        "test_coll.py::test_ids[v1-]": "test_ids[v1-].golden.json",
        "test_coll.py::test_ids[v1--pb]": "test_ids[v1--pb].golden.json",
        "test_coll.py::test_dropped_by_conftest": "test_dropped_by_conftest.golden.json",
        "test_coll.py::test_narrowed": "test_narrowed.golden.json",
    }
    # every golden holds its own test's value, so the plain run passes every item
    pytester.runpytest(*ARGS[:2], "--persist-formats=pb,h5", "--run-slow").assert_outcomes(
        passed=15)


def test_remove_unused_keeps_goldens_of_narrowed_dropped_and_deselected_tests(pytester):
    pytester.makepyfile(test_coll=COLLIDING)
    pytester.makeconftest(RUN_SLOW_CONFTEST)
    pytester.runpytest(*ARGS[:2], "--persist-formats=pb,h5", "--update-golden",
                       "--run-slow").assert_outcomes(passed=15)
    store = _store(pytester)
    before = _files(store)
    # pb only: test_narrowed is [no-format]; test_dropped_by_conftest is dropped; -k narrows
    result = pytester.runpytest(*ARGS, "--remove-unused-goldens", "-k", "not TestB")
    result.assert_outcomes(passed=5, skipped=1)
    result.stdout.fnmatch_lines(["goldens: 0 recorded, 0 updated, 0 unused"])
    assert _files(store) == before
    # a test really removed: only its two files go
    testb_arrays = json.loads((store / "TestB.test_x.golden.json").read_text())["arrays"]
    pytester.makepyfile(test_coll=COLLIDING.replace("class TestB:", "class _Gone:"))
    result = pytester.runpytest(*ARGS, "--remove-unused-goldens")
    result.stdout.fnmatch_lines(["goldens: 0 recorded, 0 updated, 1 unused, 2 files removed"])
    assert set(before) - set(_files(store)) == {"TestB.test_x.golden.json", testb_arrays}


LIVE = textwrap.dedent(
    """
    import numpy as np
    import pytest

    @pytest.mark.persist(formats=["pb"])
    def test_live(persist):
        persist.assert_golden(np.arange(4.0))
    """
)


def _plant(store: Path, name: str, arrays: str, test: str = "test_live.py::test_gone") -> Path:
    sidecar = store / f"{name}.golden.json"
    sidecar.write_text(json.dumps({"golden_format": 1, "test": test, "arrays": arrays,
                                   "outputs": {}}))
    return sidecar


def test_remove_unused_deletes_only_content_addressed_files_inside_the_golden_dir(pytester):
    pytester.makepyfile(test_live=LIVE)
    pytester.runpytest(*ARGS, "--update-golden").assert_outcomes(passed=1)
    store = _store(pytester, "test_live")
    live_arrays = gf.read_golden(store / "test_live.golden.json").arrays_path
    outside = pytester.path / "x"
    outside.write_text("outside the golden directory")
    absolute = pytester.path / "absolute.npz"
    absolute.write_text("absolute")
    sibling = store.parent / "other" / "y.0123456789ab.npz"
    sibling.parent.mkdir()
    sibling.write_text("another module's golden dir")
    decoys = [
        _plant(store, "up", "../../x"),
        _plant(store, "abs", str(absolute)),
        _plant(store, "live", live_arrays.name),
        _plant(store, "sib", "../other/y.0123456789ab.npz"),
        _plant(store, "sibling", "sibling.0123456789ab.npz/../../other/y.0123456789ab.npz"),
    ]
    conflict = store / "test_merged.golden.json"
    conflict.write_text("<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> branch\n")
    conflict_arrays = store / "test_merged.0123456789ab.npz"
    conflict_arrays.write_bytes(b"PK")
    result = pytester.runpytest(*ARGS, "--remove-unused-goldens")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        f"goldens: 0 recorded, 0 updated, {len(decoys)} unused, 1 unreadable, "
        f"{len(decoys)} files removed",
        "unreadable goldens (never removed*",
        f"  golden {conflict}: the sidecar is not a valid golden document*",
    ])
    assert not any(d.exists() for d in decoys)  # the stale sidecars themselves go
    for survivor in (outside, absolute, sibling, live_arrays, conflict, conflict_arrays):
        assert survivor.exists(), survivor
    pytester.runpytest(*ARGS).assert_outcomes(passed=1)


NASTY = {
    "deep": lambda p: p.write_text("[" * 200_000 + "]" * 200_000),
    "zero": lambda p: p.symlink_to("/dev/zero"),
    "fifo": lambda p: os.mkfifo(p),
    "dir": lambda p: p.mkdir(),
    "dangling": lambda p: p.symlink_to(p.parent / "nowhere"),
    "binary": lambda p: p.write_bytes(b"\xff\xfe\x00{" * 100),
    "huge-int": lambda p: p.write_text('{"test": ' + "9" * 50_000 + "}"),
    "list": lambda p: p.write_text("[1, 2]"),
    "test-not-str": lambda p: p.write_text('{"test": {"a": 1}, "arrays": 3}'),
}


def test_no_file_under_goldens_crashes_the_session_and_update_repairs_its_own(pytester):
    pytester.makepyfile(test_live=LIVE)
    store = _store(pytester, "test_live")
    store.mkdir(parents=True)
    for name, make in NASTY.items():
        make(store / f"{name}.golden.json")
    NASTY["deep"](store / "test_live.golden.json")  # the test's own golden, broken
    result = pytester.runpytest(*ARGS, "--remove-unused-goldens")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "INTERNALERROR" not in out and "RecursionError" in out
    assert f"unused, {len(NASTY) + 1} unreadable" in out
    for name in NASTY:
        assert (store / f"{name}.golden.json").exists() or (
            store / f"{name}.golden.json").is_symlink(), name
    result = pytester.runpytest(*ARGS, "--update-golden")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["goldens: 0 recorded, 1 updated, 0 unused, "
                                 f"{len(NASTY)} unreadable"])
    pytester.runpytest(*ARGS).assert_outcomes(passed=1)


def test_locks_are_per_user_private_and_a_planted_lock_dir_is_refused(pytester, monkeypatch,
                                                                       tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    # another user's shared lock directory (what v0.1 used) no longer matters
    (tmp / "pytest-modelpersist-locks").mkdir(mode=0o755)
    pytester.makepyfile(test_live=LIVE)
    pytester.runpytest(*ARGS, "--update-golden").assert_outcomes(passed=1)
    mine = tmp / f"pytest-modelpersist-locks-{os.getuid()}"
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700 and mine.stat().st_uid == os.getuid()
    assert not list((tmp / "pytest-modelpersist-locks").iterdir())
    # a lock directory planted by someone else (or a symlink) is refused, cleanly
    for plant in ("other-owner", "symlink"):
        shutil.rmtree(mine)
        if plant == "symlink":
            mine.symlink_to(tmp / "pytest-modelpersist-locks")
        else:
            mine.mkdir(mode=0o700)
            os.chown(mine, 65534, 65534)
        result = pytester.runpytest(*ARGS, "--update-golden")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines([f"*lock golden * failed: GoldenError: lock directory {mine}*"
                                     "refused*"])
        assert "INTERNALERROR" not in result.stdout.str()
        if mine.is_symlink():
            mine.unlink()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_golden_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        written = gf.write_golden(tmp_path / "t.golden.json", [np.ones(2)], names=["a"],
                                  test="t", inputs_crc=None)
    finally:
        os.umask(old)
    for path in (written.sidecar, written.arrays_path):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


TWO_CHECKS = textwrap.dedent(
    """
    import numpy as np
    import pytest
    import model_zoo

    X = np.ones((2, 1), np.float32)

    @pytest.mark.persist(formats=["pb"])
    def test_named(persist):
        persist.check(model_zoo.seed_graph(1.0), X, name="first")
        persist.check(model_zoo.seed_graph(3.0), X, name="second")

    @pytest.mark.persist(formats=["pb"])
    def test_unnamed(persist):
        persist.check(model_zoo.seed_graph(1.0), X)
        persist.check(model_zoo.seed_graph(3.0), X)
    """
)


def test_two_checks_in_one_test_take_names(pytester):
    pytester.syspathinsert(Path(__file__).parent)
    pytester.makepyfile(test_two=TWO_CHECKS)
    result = pytester.runpytest(*ARGS, "--update-golden")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_unnamed.golden.json is already used by this test: give "
                                 "each check() and assert_golden() call of one test its own "
                                 "name=*"])
    names = sorted(p.name for p in gf.goldens_in(_store(pytester, "test_two")))
    assert names[:2] == ["test_named--first.golden.json", "test_named--second.golden.json"]
    pytester.runpytest(*ARGS, "-k", "named and not unnamed").assert_outcomes(passed=1)


RANDOM_MODEL = textwrap.dedent(
    """
    import numpy as np
    import keras
    import pytest

    def build():
        # unseeded initializers: every item builds different weights
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])

    @pytest.mark.persist(formats=["h5", "keras"])
    def test_random(persist):
        persist.check(build(), np.ones((2, 4), np.float32) * 3)
    """
)


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])
@pytest.mark.heavy
def test_nondeterministic_original_outputs_are_detected(pytester, xdist):
    pytester.makepyfile(test_rand=RANDOM_MODEL)
    run = pytester.runpytest_subprocess if xdist else pytester.runpytest
    result = run("-p", "no:cacheprovider", "--update-golden", *xdist)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.re_match_lines([
        r".*\[(h5|keras)\] this model's outputs are not deterministic: \[(h5|keras)\] and "
        r"\[(h5|keras)\] saw different original outputs \(max abs [0-9.e-]+\).*"])
    sidecar = _store(pytester, "test_rand") / "test_random.golden.json"
    gf.read_golden(sidecar)  # the first writer's golden, intact


def test_mismatch_leaves_obtained_outputs_beside_the_golden_until_it_passes(pytester,
                                                                            monkeypatch):
    pytester.makepyfile(test_obt=textwrap.dedent(
        """
        import os
        import numpy as np
        import pytest

        @pytest.mark.persist(formats=["pb"])
        def test_out(persist):
            persist.assert_golden(np.arange(3.0) * float(os.environ.get("K", "1")))
        """))
    pytester.runpytest(*ARGS, "--update-golden").assert_outcomes(passed=1)
    store = _store(pytester, "test_obt")
    obtained = store / "test_out.obtained.npz"
    monkeypatch.setenv("K", "2")
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"obtained outputs written to {obtained} (removed when the "
                                 "test passes)"])
    with np.load(obtained) as npz:
        np.testing.assert_array_equal(npz["output_0"], np.arange(3.0) * 2)
    result = pytester.runpytest(*ARGS, "--remove-unused-goldens")  # not a stray file
    result.stdout.fnmatch_lines(["goldens: 0 recorded, 0 updated, 0 unused"])
    assert obtained.exists()
    monkeypatch.setenv("K", "1")
    pytester.runpytest(*ARGS).assert_outcomes(passed=1)
    assert not obtained.exists()


@pytest.mark.heavy
def test_xdist_update_then_plain_run_passes_for_every_combination(pytester):
    pytester.makepyfile(test_coll=COLLIDING)
    pytester.makeconftest(RUN_SLOW_CONFTEST)
    base = ("-p", "no:cacheprovider", "--persist-formats=pb,h5", "-n", "2")
    pytester.runpytest_subprocess(*base, "--update-golden", "--run-slow",
                                  timeout=600).assert_outcomes(passed=15)
    pytester.runpytest_subprocess(*base, "--run-slow", timeout=600).assert_outcomes(passed=15)
    pytester.runpytest_subprocess(*base, timeout=600).assert_outcomes(passed=13)
    result = pytester.runpytest_subprocess(*base[:2], "--persist-formats=pb", "-n", "2",
                                           "--remove-unused-goldens", timeout=600)
    result.assert_outcomes(passed=6, skipped=1)
    result.stdout.fnmatch_lines(["goldens: 0 recorded, 0 updated, 0 unused"])
    assert len(gf.goldens_in(_store(pytester))) == 8


# ---- hypothesis: no sidecar content makes the readers raise anything but GoldenError -------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["test", "arrays", "outputs", "shape", "dtype",
                                       "crc32", "x"]) | st.text(max_size=5), children,
                      max_size=5),
    max_leaves=30,
)


def _doc_bytes(value: object, encoding: str, nesting: int) -> bytes:
    text = "[" * nesting + json.dumps(value) + "]" * nesting
    return text.encode(encoding, "surrogatepass")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=JSON, encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]),
                  nesting=st.sampled_from([0, 1, 50, 100_000]),
                  arrays=st.sampled_from(["", "../../x", "/etc/passwd", "t.0123456789ab.npz",
                                          "a/b.npz", "t.npz"]))
def test_hypothesis_sidecars_never_raise_anything_but_golden_error(tmp_path_factory, value,
                                                                   encoding, nesting, arrays):
    store = tmp_path_factory.mktemp("g")
    (store / "t.golden.json").write_bytes(_doc_bytes(value, "latin-1" if encoding == "latin-1"
                                                     else encoding, nesting))
    (store / "u.golden.json").write_text(json.dumps({"test": "x", "arrays": arrays,
                                                     "outputs": value}))
    (store / "t.0123456789ab.npz").write_bytes(b"PK\x03\x04" + b"\0" * 30)
    for sidecar in gf.goldens_in(store):
        try:
            gf.read_golden(sidecar)
        except gf.GoldenError:
            pass
    golden_paths.stray_arrays(store)  # never raises


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/null", "/dev/urandom", "fifo", "dir"])
def test_sidecar_symlinked_to_a_special_file_is_refused_quickly(tmp_path, special):
    target = tmp_path / "target"
    if special == "fifo":
        os.mkfifo(target)
    elif special == "dir":
        target.mkdir()
    else:
        target = Path(special)
    link = tmp_path / "t.golden.json"
    link.symlink_to(target)
    with pytest.raises(gf.GoldenError, match="not a regular file"):
        gf.read_golden(link)
    assert golden_paths.stray_arrays(tmp_path) == []
