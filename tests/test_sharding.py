"""Sharded saves (``max_shard_mb``; formats/shards.py): real saves split into several files,
restored by every loader and reader; a missing, truncated or corrupted shard is a failure
naming the format and the file; formats and versions that cannot shard say so once, and
write whole files."""

from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import new_persist

from pytest_modelpersist.errors import PersistWarning
from pytest_modelpersist.formats import BUILTIN, LazyFormat, shards

import model_zoo

SHARDING = ("tf_checkpoint", "savedmodel", "weights_h5")
X = np.linspace(-1.0, 1.0, 2 * 64, dtype=np.float32).reshape(2, 64)
#: 20,000 bytes: each 64x64 float32 kernel (16 KiB) fits one shard, two do not.
SMALL = 20_000 / shards.MB


def wide(seed: int = 1) -> Any:
    """Five Dense layers: 4 kernels of 16 KiB and a head; fixed names (by-name restores)."""
    keras = model_zoo.import_keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((64,), name="x")
    h = inp
    for i in range(4):
        h = keras.layers.Dense(64, name=f"d{i}")(h)
    return keras.Model(inp, keras.layers.Dense(3, name="head")(h))


def wide_module() -> Any:
    from pytest_modelpersist._tf import import_tensorflow

    tf = import_tensorflow()

    class Wide(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            rng = np.random.default_rng(5)
            self.w = [tf.Variable(rng.standard_normal((64, 64)).astype("float32"), name=f"w{i}")
                      for i in range(3)]

        @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32)])
        def __call__(self, x: Any) -> Any:
            for w in self.w:
                x = tf.tanh(tf.matmul(x, w))
            return x

    return Wide()


def why_whole(fmt: str, model: Any) -> str | None:
    """Why this TensorFlow / Keras cannot shard `fmt` for `model` (None: it can)."""
    if fmt == "weights_h5":
        return shards.keras_shards(model)
    return shards.tf_policy(1.0)[1]


def shard_files(artifact: Any) -> list[Path]:
    return sorted(p for p in artifact.files if ".data-" in p.name or (
        p.name.startswith("model_") and p.name.endswith(".weights.h5")))


def saved(fmt: str, tmp_path: Path, model: Any, **options: Any) -> Any:
    """A check of `model` in `fmt`, sharded at SMALL; the artifact (a PersistWarning is an
    error here: a format that should shard must)."""
    p = new_persist(fmt, tmp_path, max_shard_mb=SMALL, **options)
    build = wide_module if hasattr(model, "w") else wide
    with warnings.catch_warnings():
        warnings.simplefilter("error", PersistWarning)
        return p.check(model, X, build=build if p.adapter.needs_build else None,
                       golden=False).artifact


def test_the_formats_that_shard_declare_max_shard_mb_in_their_save():
    import inspect

    declared = {name for name in BUILTIN if shards.OPTION in LazyFormat(name).save_options}
    assert declared == set(SHARDING)
    for name in declared:
        assert shards.OPTION in inspect.signature(LazyFormat(name).inner.save).parameters
    assert set(shards.WHOLE) == {"ckpt", "h5", "keras", "pb"}


@pytest.mark.parametrize("fmt", SHARDING)
@pytest.mark.parametrize("kind", ["keras", "module"])
def test_a_sharded_save_writes_several_files_and_round_trips(fmt, kind, tmp_path):
    model = wide() if kind == "keras" else wide_module()
    if kind == "module" and fmt == "weights_h5":
        pytest.skip("weights_h5 holds Keras models only")
    why = why_whole(fmt, model)
    if why is not None:  # TF 2.15 / Keras 2: whole files, and the warning says why
        p = new_persist(fmt, tmp_path, max_shard_mb=SMALL)
        said = rf"\[{fmt}\] max_shard_mb asked for shards, but the save wrote whole files: "
        with pytest.warns(PersistWarning, match=said):
            artifact = p.check(model, X, build=(wide if kind == "keras" else wide_module)
                               if p.adapter.needs_build else None, golden=False).artifact
        assert artifact.meta[shards.UNSHARDED] == why
        assert len(shard_files(artifact)) <= 1
        pytest.skip(f"this version cannot shard {fmt}: {why}")
    artifact = saved(fmt, tmp_path, model)
    files = shard_files(artifact)
    assert len(files) > 1, [f.name for f in artifact.files]
    assert set(artifact.meta[shards.SHARDS]) == {
        f.relative_to(artifact.directory).as_posix() for f in files}
    limit = SMALL * shards.MB
    if fmt == "weights_h5":  # the weights in each shard: HDF5's own ~14 KB per file aside
        assert artifact.path.name == "model.weights.json"
        assert json.loads(artifact.path.read_text())["weight_map"]
        held = [_h5_bytes(f) for f in files]
        assert all(0 < b <= limit for b in held), held
    else:
        assert all(f.stat().st_size <= limit for f in files), [f.stat().st_size for f in files]


def _h5_bytes(path: Path) -> int:
    import h5py

    found: list[int] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda _, o: found.append(o.nbytes) if isinstance(o, h5py.Dataset) else None)
    return sum(found)


@pytest.mark.parametrize("fmt", SHARDING)
def test_by_name_restores_read_every_shard(fmt, tmp_path):
    model = wide()
    if why_whole(fmt, model):
        pytest.skip(f"this version cannot shard {fmt}: {why_whole(fmt, model)}")
    # TF slices a variable over shards when it is bigger than the limit: 5,000 bytes
    size = SMALL if fmt == "weights_h5" else 5_000 / shards.MB
    p = new_persist(fmt, tmp_path, max_shard_mb=size)
    artifact = p.save(model, inputs=X)
    assert len(shard_files(artifact)) > (3 if fmt == "weights_h5" else 4)
    target = wide(seed=2)
    restored = p.restore(artifact, into=target, strict=False)
    assert np.array_equal(np.asarray(target(X)), np.asarray(model(X))), restored.how
    names = p.adapter.saved_names(artifact, p._parse({}))
    assert len(names.entries) >= 10


def test_a_sharded_savedmodel_runs_in_a_subprocess_and_through_the_c_api(tmp_path):
    model = wide()
    if why_whole("savedmodel", model):
        pytest.skip(f"this version cannot shard savedmodel: {why_whole('savedmodel', model)}")
    for loader in ("subprocess", "capi"):
        p = new_persist("savedmodel", tmp_path / loader, max_shard_mb=SMALL)
        artifact = p.save(model, inputs=X)
        assert len(shard_files(artifact)) > 1
        got = p.restore(artifact, loader=loader)(X)
        assert np.allclose(np.asarray(got), np.asarray(model(X)), atol=1e-6), loader


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # corrupted: the bytes of a tensor in the middle of the shard
        mid = len(data) // 2
        data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("fmt", SHARDING)
@pytest.mark.parametrize("how", ["missing", "truncated", "corrupted"])
def test_a_damaged_shard_fails_naming_the_format_and_the_file(fmt, how, tmp_path):
    model = wide()
    if why_whole(fmt, model):
        pytest.skip(f"this version cannot shard {fmt}: {why_whole(fmt, model)}")
    p = new_persist(fmt, tmp_path, max_shard_mb=SMALL)
    artifact = p.save(model, inputs=X)
    victim = shard_files(artifact)[1]
    _damage(victim, how)
    build = wide if p.adapter.needs_build else None
    if how == "corrupted" and fmt == "weights_h5":
        # HDF5 keeps no checksums: the restore reads other numbers, and check's comparison
        # of the outputs is what fails
        restored = p.restore(artifact, build=build)
        assert not np.allclose(np.asarray(restored(X)), np.asarray(model(X)), atol=1e-3)
        return
    with pytest.raises(pytest.fail.Exception) as failed:
        p.restore(artifact, build=build)(X)
    message = str(failed.value)
    assert message.startswith(f"[{fmt}] restore"), message
    if how != "corrupted":
        assert f"shard {victim} " in message, message
    else:  # TensorFlow's checksum names the checkpoint and the shard's number
        assert "Checksum does not match" in message and "shard 1" in message, message


def test_a_shard_left_out_of_a_checkpoint_without_a_manifest_is_named(tmp_path):
    """TF's own files alone (no plugin manifest): the -of-N names say what is missing."""
    model = wide()
    if why_whole("tf_checkpoint", model):
        pytest.skip(f"this version cannot shard: {why_whole('tf_checkpoint', model)}")
    artifact = new_persist("tf_checkpoint", tmp_path, max_shard_mb=SMALL).save(model, inputs=X)
    victim = shard_files(artifact)[-1]
    victim.unlink()
    with pytest.raises(ValueError, match=f"checkpoint shard {victim} is missing"):
        shards.check_complete(artifact.path)


def sharded_weights(tmp_path: Path) -> tuple[Any, Any]:
    """(a Persist, its sharded weights_h5 artifact of `wide()`), or the test skips."""
    model = wide()
    if why_whole("weights_h5", model):
        pytest.skip(f"this version cannot shard: {why_whole('weights_h5', model)}")
    p = new_persist("weights_h5", tmp_path, max_shard_mb=SMALL)
    return p, p.save(model, inputs=X)


def test_a_weights_manifest_naming_a_file_outside_the_artifact_is_refused(tmp_path):
    p, artifact = sharded_weights(tmp_path)
    outside = tmp_path / "elsewhere.weights.h5"
    outside.write_bytes(shard_files(artifact)[0].read_bytes())
    doc = json.loads(artifact.path.read_text())
    first = next(iter(doc["weight_map"]))
    doc["weight_map"][first] = ["../../../elsewhere.weights.h5"]
    artifact.path.write_text(json.dumps(doc))
    artifact.meta.pop(shards.SHARDS)  # the manifest's own check would name the size first
    with pytest.raises(pytest.fail.Exception) as failed:
        p.restore(artifact, build=wide)
    message = str(failed.value)
    assert "[weights_h5]" in message and "names the shard '../../../elsewhere.weights.h5'" in (
        message), message
    assert "unsafe=True" in message


def test_a_crafted_shard_declaring_more_than_it_stores_is_refused(tmp_path):
    import h5py

    p, artifact = sharded_weights(tmp_path)
    victim = shard_files(artifact)[2]
    with h5py.File(victim, "a") as f:  # a dataset of 4 GB declared, nothing stored
        f.create_dataset("layers/huge/vars/0", shape=(1 << 30,), dtype="float32")
    artifact.meta.pop(shards.SHARDS)
    with pytest.raises(pytest.fail.Exception) as failed:
        p.restore(artifact, build=wide)
    message = str(failed.value)
    assert "[weights_h5]" in message and str(victim) in message, message
    assert "declaring 4,294,967,296 bytes" in message, message


PLUGIN_TESTS = """
    import numpy as np
    import pytest
    import model_zoo

    X = np.ones((2, 4), "float32")

    def test_ini(persist):
        a = persist.check(model_zoo.randomize(model_zoo.functional()), X,
                          build=model_zoo.functional, golden=False).artifact
        print("SHARDED", persist.format, sorted(a.meta.get("shards") or []))

    @pytest.mark.persist(max_shard_mb=None)
    def test_marker_off(persist):
        a = persist.check(model_zoo.randomize(model_zoo.functional()), X,
                          build=model_zoo.functional, golden=False).artifact
        print("WHOLE", persist.format, "shards" in a.meta)
"""


def test_ini_and_marker_choose_the_shard_size_and_whole_formats_say_so(pytester):
    pytester.syspathinsert(str(Path(__file__).parent))
    pytester.makeini("[pytest]\npersist_max_shard_mb = 0.0001\n")
    pytester.makepyfile(textwrap.dedent(PLUGIN_TESTS))
    result = pytester.runpytest("--persist-formats=weights_h5,h5", "--persist-loaders=inprocess",
                                "-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    assert "WHOLE weights_h5 False" in out and "WHOLE h5 False" in out
    assert "SHARDED h5 []" in out
    result.stdout.fnmatch_lines(["*PersistWarning: [[]h5[]] max_shard_mb asked for shards, but "
                                 "the save wrote whole files: legacy full-model HDF5 is one file*"])
    model = model_zoo.functional()
    if shards.keras_shards(model) is None:
        assert "SHARDED weights_h5 ['model_00000.weights.h5', 'model_00001.weights.h5'" in out
    assert out.count("PersistWarning: [h5]") == 1  # the marker's None: no warning


@pytest.mark.parametrize("ini, cli, sharded", [
    ("", "--persist-max-shard-mb=0.0001", True),
    ("persist_max_shard_mb = 0.0001", "--persist-max-shard-mb=0", False),
])
def test_the_command_line_sets_the_shard_size_over_the_ini(pytester, ini, cli, sharded):
    can = [f for f in SHARDING if why_whole(f, model_zoo.functional()) is None]
    if not can:
        pytest.skip("this version shards no format")
    pytester.syspathinsert(str(Path(__file__).parent))
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(textwrap.dedent(PLUGIN_TESTS))
    result = pytester.runpytest(f"--persist-formats={can[0]}", "--persist-loaders=inprocess",
                                cli, "-s", "-k", "test_ini", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    files = next(line for line in result.stdout.lines if "SHARDED" in line)
    assert (not files.endswith(f"SHARDED {can[0]} []")) == sharded, files


@pytest.mark.parametrize("ini, marker, cli, expected", [
    ("persist_max_shard_mb = -1", None, [],
     "ini option persist_max_shard_mb: expected a number of MB > 0 (2**20 bytes), or nothing"),
    ("persist_max_shard_mb = lots", None, [], "ini option persist_max_shard_mb: expected a number"),
    ("", "'64'", [], "@pytest.mark.persist(max_shard_mb='64'): expected a number of MB > 0"),
    ("", None, ["--persist-max-shard-mb=-1"],
     "--persist-max-shard-mb: expected a number of MB > 0 (2**20 bytes), or 0 for whole files; "
     "got '-1'"),
    ("persist_max_shard_mb = 64", None, ["--persist-max-shard-mb=inf"],
     "--persist-max-shard-mb: expected a number of MB > 0"),
])
def test_bad_shard_sizes_are_refused_before_anything_runs(pytester, ini, marker, cli, expected):
    pytester.makeini(f"[pytest]\n{ini}\n")
    mark = f"@pytest.mark.persist(max_shard_mb={marker})\n" if marker else ""
    pytester.makepyfile(f"import pytest\n\n{mark}def test_a(persist):\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", "--persist-formats=h5", *cli)
    assert result.ret in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERRUPTED)
    assert expected in result.stdout.str() + result.stderr.str()


def test_a_sharded_artifact_is_archived_file_by_file_and_replays(pytester):
    """The archive stores every shard (content-addressed) and the replay restores them."""
    from test_archive import entry, module

    can = [f for f in SHARDING if why_whole(f, model_zoo.functional()) is None]
    if not can:
        pytest.skip("this version shards no format")
    module(pytester, units=16)  # 456 bytes of weights, the largest variable 256
    pytester.makeini("[pytest]\npersist_max_shard_mb = 0.0003\n")
    formats = f"--persist-formats={','.join(can)}"
    pytester.runpytest("--persist-archive=arch", "--archive-record=v1", formats,
                       "-p", "no:cacheprovider").assert_outcomes(passed=len(can))
    for fmt in can:
        stored = [n for n in entry(pytester, fmt)["files"] if ".data-" in n or "_0000" in n]
        assert len(stored) > 1, (fmt, stored)
    pytester.makeini("[pytest]\n")  # the replay reads the files, whatever the ini says now
    result = pytester.runpytest("--persist-archive=arch", formats, "-v", "-p",
                                "no:cacheprovider")
    result.assert_outcomes(passed=2 * len(can))
    result.stdout.fnmatch_lines([f"*test_model?{can[0]}@v1? PASSED*"])


def test_a_bad_size_given_to_save_fails_the_test_cleanly(tmp_path):
    p = new_persist("h5", tmp_path)
    with pytest.raises(pytest.fail.Exception, match=r"\[h5\] max_shard_mb: expected a number of "
                                                    r"MB > 0 \(2\*\*20 bytes\), got -1"):
        p.save(wide(), inputs=X, max_shard_mb=-1)


def test_todays_sharded_savedmodel_restores_in_the_tf215_runtime(tmp_path):
    """A sharded SavedModel of this TensorFlow, sliced variables included, checked through
    TF 2.15.1 (a runtime loader: ini persist_runtimes), which cannot write shards itself."""
    import os

    from test_runtimes import TF215_ENV, persist_on

    python = os.environ.get(TF215_ENV, "")
    if not python:
        pytest.skip(f"{TF215_ENV} is not set (make test sets it to .venv-tf215/bin/python)")
    model = wide_module()
    if why_whole("savedmodel", model):
        pytest.skip(f"this version cannot shard: {why_whole('savedmodel', model)}")
    # 5,000 bytes: each 16 KiB variable is sliced over shards
    p = persist_on("savedmodel", tmp_path, "tf215", python, max_shard_mb=5_000 / shards.MB)
    result = p.check(model, X, golden=False)  # fails unless TF 2.15.1 gives the outputs back
    assert len(shard_files(result.artifact)) > 4
    assert result.restored[0].how.startswith("runtime tf215 ("), result.restored[0].how
