"""Untrusted files (issue 14, items 2-4 and 6): what a restore reads must come from the
artifact, and what it allocates must be what the files hold (formats/containment.py).

Each case crafts the file itself from a real save (tests/crafted_files.py), restores it the way
the plugin does, proves the effect does not happen (no outside byte comes back, memory stays
bounded, measured in a child process) and checks the message: the format, the file, the
feature and the opt-in. A positive control (unsafe=True) proves each crafted file is real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import crafted_files as cf
import crafted_graphs as crafted
import numpy as np
import pytest
from test_bad_input import FORMATS, assert_clear, failure

from pytest_modelpersist.formats import containment
from pytest_modelpersist.models import as_output_list
from pytest_modelpersist.models import run as run_model
from pytest_modelpersist.persist import CheckOptions, Persist

import model_zoo

X = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
OPT_IN = "opt in for this test only: @pytest.mark.persist(unsafe=True)"
TESTS = Path(__file__).parent


def persist(fmt: str, where: Path, *, unsafe: bool = False) -> Persist:
    return Persist(FORMATS[fmt](), tmp_path=where,
                   options=CheckOptions(safe_mode=not unsafe, golden=False))


def named() -> Any:
    """A Sequential model whose layers have fixed names (a by-name restore finds them)."""
    keras = model_zoo.import_keras()
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, name="d1"),
                             keras.layers.Dense(3, name="d2")], name="net")


def saved(fmt: str, tmp_path: Path, model: Any = None) -> Any:
    model = model if model is not None else model_zoo.randomize(named())
    return persist(fmt, tmp_path / "save").save(model, inputs=X)


def restore_by_name(fmt: str, where: Path, artifact: Any, *, unsafe: bool = False) -> Any:
    """The by-name restore of a Keras file through the plugin's own h5py readers (a var_map
    keeps Keras' own load_weights out of it); the target."""
    p = persist(fmt, where, unsafe=unsafe)
    by_layer = fmt == "h5" or (fmt == "weights_h5" and model_zoo.keras_major() == 2)
    maps = {"d1/": "d1/"} if by_layer else {"layers/dense/": "layers/dense/"}
    if fmt == "weights_h5":
        return p.restore(artifact.directory, build=named, var_map=maps).model
    target = named()
    p.restore(artifact.directory, into=target, var_map=maps)
    return target


def child_peak_growth(script: str, *args: str) -> tuple[str, float]:
    """Run `script` in a fresh interpreter (TensorFlow imported first); its output and how far
    its peak RSS (VmHWM) grew, in MiB, while the script ran. The child's address space is
    capped at 8 GiB, so a guard that fails cannot take the machine down with it."""
    prelude = textwrap.dedent("""
        import os, resource, sys
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
        import numpy as np, tensorflow, keras, h5py, pytest
        def hwm():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        START = hwm()
    """)
    epilogue = "\nprint('GROWTH_MIB', hwm() - START)\n"
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script) + epilogue,
                           *args], capture_output=True, text=True, timeout=600,
                          cwd=TESTS, env={**os.environ, "PYTHONPATH": str(TESTS)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    growth = float(proc.stdout.rsplit("GROWTH_MIB", 1)[1])
    print(f"child peak RSS grew {growth:.1f} MiB")  # shown with -s (the README's numbers)
    return proc.stdout, growth


# ---- item 2: the plugin's h5py readers never read another file --------------------------------

KERNEL = {"h5": "model_weights/d1/net/d1/kernel", "weights_h5": "layers/dense/vars/0",
          "keras": "layers/dense/vars/0"}
#: The same datasets in Keras 2's files (TF 2.15): legacy layer-named HDF5 for h5 and weights_h5
#: (`model_weights.h5`), the same layout inside a .keras archive.
KERNEL_KERAS2 = {"h5": "model_weights/d1/d1/kernel:0", "weights_h5": "d1/d1/kernel:0",
                 "keras": "layers/dense/vars/0"}


def kernel(fmt: str) -> str:
    """The first Dense kernel's dataset in `fmt`'s weights file, in the Keras here."""
    return (KERNEL_KERAS2 if model_zoo.keras_major() == 2 else KERNEL)[fmt]


def by_name_keras_archive(fmt: str) -> None:
    """Skip where a by-name restore of a .keras archive does not exist (Keras 2 refuses it:
    its weights are named by class and position), so the plugin's reader is never used."""
    if fmt == "keras" and model_zoo.keras_major() == 2:
        pytest.skip("Keras 2: by-name restores of a .keras archive are refused, the plugin's "
                    "h5py reader of its member is not used")
FEATURE_WORDS = {"external_link": "external link", "soft_link_out": "external link",
                 "external_storage": "stored in external files",
                 "virtual_dataset": "virtual dataset"}


def craft_h5(fmt: str, artifact: Any, feature: str, outside: Path) -> str:
    """Point the first Dense kernel of the artifact's weights outside it; returns the file
    name the refusal must name."""
    if fmt == "keras":
        cf.edit_keras_member(artifact.path, "model.weights.h5",
                             lambda f: cf.redirect_dataset(f, kernel(fmt), feature, outside))
        return f"{artifact.path}:model.weights.h5"
    cf.redirect_dataset(artifact.path, kernel(fmt), feature, outside)
    return str(artifact.path)


@pytest.mark.parametrize("feature", cf.H5_FEATURES)
@pytest.mark.parametrize("fmt", ["h5", "weights_h5", "keras"])
def test_by_name_h5_readers_refuse_what_reads_another_file(fmt, feature, tmp_path):
    by_name_keras_archive(fmt)
    artifact = saved(fmt, tmp_path)
    where = craft_h5(fmt, artifact, feature, tmp_path / "outside")
    message = failure(lambda: restore_by_name(fmt, tmp_path / "safe", artifact))
    assert_clear(message, fmt, where, FEATURE_WORDS[feature])
    assert OPT_IN in message

    # positive control: the crafted file really reads the other file's bytes...
    assert_reads_outside(fmt, artifact, tmp_path / "extracted.h5")
    # ... and the opt-in lifts the refusal: the restore returns those bytes, or fails on
    # the link in its own words (Keras' load_weights refuses some; h5py's visititems does
    # not list a linked dataset)
    try:
        target = restore_by_name(fmt, tmp_path / "unsafe", artifact, unsafe=True)
    except pytest.fail.Exception as exc:
        assert "refused by default" not in str(exc)
    else:
        kernel = target.layers[0].kernel.numpy()
        # h5py reads a virtual dataset of a file object (the spilled member) as its fill value
        fill = fmt == "keras" and feature == "virtual_dataset"
        np.testing.assert_array_equal(kernel, 0.0 if fill else cf.OUTSIDE_VALUE)


def assert_reads_outside(fmt: str, artifact: Any, extracted: Path) -> None:
    import h5py

    path = artifact.path
    if fmt == "keras":
        with zipfile.ZipFile(artifact.path) as z:
            extracted.write_bytes(z.read("model.weights.h5"))
        path = extracted
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f[kernel(fmt)][()], cf.OUTSIDE_VALUE)


def test_a_soft_link_inside_the_file_is_fine(tmp_path):
    import h5py

    artifact = saved("h5", tmp_path)
    with h5py.File(artifact.path, "r+") as f:
        f.move(kernel("h5"), "moved_kernel")
        f[kernel("h5")] = h5py.SoftLink("/moved_kernel")
    target = restore_by_name("h5", tmp_path / "safe", artifact)
    assert np.all(target.layers[0].kernel.numpy() != cf.OUTSIDE_VALUE)


@pytest.mark.parametrize("fmt", ["h5", "weights_h5", "keras"])
def test_h5_dataset_declaring_a_billion_unstored_elements_is_refused(fmt, tmp_path):
    by_name_keras_archive(fmt)
    artifact = saved(fmt, tmp_path)
    if fmt == "keras":
        cf.edit_keras_member(artifact.path, "model.weights.h5",
                             lambda f: cf.declare_unstored(f, kernel(fmt)))
    else:
        cf.declare_unstored(artifact.path, kernel(fmt))
    message = failure(lambda: restore_by_name(fmt, tmp_path / "safe", artifact))
    assert_clear(message, fmt, artifact.path,
                 r"declaring 4,000,000,000 bytes \(float32\[1000000000\]\) but storing 0")
    assert OPT_IN in message


def test_full_model_h5_with_an_unstored_billion_elements_is_refused_in_bounded_memory(tmp_path):
    """The whole-model load (keras.models.load_model) is guarded too: Keras would allocate
    the 4 GB the dataset declares."""
    artifact = saved("h5", tmp_path)
    cf.declare_unstored(artifact.path, kernel("h5"))
    out, growth = child_peak_growth("""
        from pytest_modelpersist.persist import CheckOptions, Persist
        from pytest_modelpersist.formats.keras_formats import H5Format
        try:
            Persist(H5Format(), tmp_path=__import__("pathlib").Path(sys.argv[2]),
                    options=CheckOptions(golden=False)).restore(sys.argv[1])
        except BaseException as exc:
            print("REFUSED", exc)
    """, str(artifact.directory), str(tmp_path / "child"))
    assert "REFUSED [h5] restore" in out and "storing 0" in out and OPT_IN in out, out
    assert growth < 64, f"peak RSS grew {growth:.0f} MiB"


# ---- item 3: a zip bomb in a .keras archive ---------------------------------------------------


@pytest.mark.heavy
def test_keras_zip_bomb_is_refused_from_declared_sizes_in_bounded_memory(tmp_path):
    # Keras 2 refuses by-name restores of a .keras archive before reading it
    modes = ["load_model"] if model_zoo.keras_major() == 2 else ["by-name", "load_model"]
    artifact = saved("keras", tmp_path)
    cf.zip_bomb(artifact.path, "model.weights.h5", 1 << 30)  # 1 GiB of zeros, ~1 MB stored
    assert artifact.path.stat().st_size < 8 << 20
    out, growth = child_peak_growth("""
        import pathlib
        import model_zoo
        from pytest_modelpersist.persist import CheckOptions, Persist
        from pytest_modelpersist.formats.keras_formats import KerasFormat
        for mode in sys.argv[3].split(","):
            p = Persist(KerasFormat(), tmp_path=pathlib.Path(sys.argv[2]) / mode,
                        options=CheckOptions(golden=False))
            try:
                if mode == "by-name":
                    p.restore(sys.argv[1], into=model_zoo.sequential())
                else:
                    p.restore(sys.argv[1])
            except BaseException as exc:
                print("REFUSED", mode, exc)
    """, str(artifact.directory), str(tmp_path / "child"), ",".join(modes))
    for mode in modes:
        assert f"REFUSED {mode} [keras] restore {artifact.path}" in out, out
    assert out.count("a zip member declaring 1,073,741,824 bytes stored in") == len(modes), out
    assert "decompression bomb" in out and out.count(OPT_IN) == len(modes), out
    assert f"{artifact.path}:model.weights.h5" in out
    assert growth < 64, f"peak RSS grew {growth:.0f} MiB"


@pytest.mark.heavy
def test_opted_in_keras_member_is_streamed_not_read_into_memory(tmp_path):
    """With unsafe=True the limit is lifted, and the member still goes to a temporary file in
    chunks: 512 MiB of zeros grow the peak RSS by far less (the old reader held it twice)."""
    by_name_keras_archive("keras")
    artifact = saved("keras", tmp_path)
    cf.zip_bomb(artifact.path, "model.weights.h5", 512 << 20)
    out, growth = child_peak_growth("""
        import pathlib
        import model_zoo
        from pytest_modelpersist.persist import CheckOptions, Persist
        from pytest_modelpersist.formats.keras_formats import KerasFormat
        p = Persist(KerasFormat(), tmp_path=pathlib.Path(sys.argv[2]),
                    options=CheckOptions(golden=False, safe_mode=False))
        try:
            p.restore(sys.argv[1], into=model_zoo.sequential())
        except BaseException as exc:
            print("FAILED", exc)
    """, str(artifact.directory), str(tmp_path / "child"))
    # zeros are not HDF5: h5py names the problem once it opens the spilled file
    assert f"FAILED [keras] restore {artifact.path}" in out and "signature" in out, out
    assert growth < 64, f"peak RSS grew {growth:.0f} MiB"


def test_keras_config_json_bomb_is_refused_by_the_interface_reader(tmp_path):
    from pytest_modelpersist.interface.keras_files import keras_archive_interface

    artifact = saved("keras", tmp_path)
    cf.zip_bomb(artifact.path, "config.json", 300 << 20)
    with pytest.raises(ValueError, match=r"config.json.*decompression bomb"):
        keras_archive_interface(artifact.path)


# ---- item 4: containment of paths -------------------------------------------------------------


def other_checkpoint(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A ckpt of the same graph with other values, outside the artifact; its outputs on X."""
    model = crafted.graph_model(lambda tf, x: tf.no_op(), variable=True)
    with model.graph.as_default():
        for v in model.graph.get_collection("variables"):
            v.load(5.0, model.session)
    artifact = persist("ckpt", tmp_path / "elsewhere").save(model, inputs=X)
    return artifact.directory, X * 5.0


@pytest.mark.parametrize("how", ["absolute", "dotdot"])
def test_checkpoint_state_file_naming_a_prefix_outside_is_refused(how, tmp_path):
    model = crafted.graph_model(lambda tf, x: tf.no_op(), variable=True)
    artifact = persist("ckpt", tmp_path / "save").save(model, inputs=X)
    outside, expected = other_checkpoint(tmp_path)
    named = (str(outside / "model") if how == "absolute"
             else os.path.relpath(outside / "model", artifact.directory))
    (artifact.directory / "checkpoint").write_text(
        f'model_checkpoint_path: "{named}"\nall_model_checkpoint_paths: "{named}"\n')
    message = failure(lambda: persist("ckpt", tmp_path / "safe").restore(artifact.directory))
    assert_clear(message, "ckpt", f"the checkpoint state in {artifact.directory}",
                 r"names .*model.*outside the artifact directory")
    assert OPT_IN in message
    # positive control: opted in, the graph and weights come from the other checkpoint
    out = persist("ckpt", tmp_path / "unsafe", unsafe=True).restore(artifact.directory)(X)
    np.testing.assert_array_equal(out[0], expected)


def test_savedmodel_with_a_symlinked_variables_directory_is_refused(tmp_path):
    model = model_zoo.randomize(named())
    artifact = saved("savedmodel", tmp_path, model)
    other = model_zoo.randomize(model, seed=99)  # the same model, other values
    elsewhere = persist("savedmodel", tmp_path / "elsewhere").save(other, inputs=X)
    variables = artifact.path / "variables"
    shutil.rmtree(variables)
    variables.symlink_to(elsewhere.path / "variables", target_is_directory=True)
    for loader in ("inprocess", "subprocess"):
        p = persist("savedmodel", tmp_path / f"safe-{loader}")
        message = failure(lambda p=p, loader=loader: p.restore(artifact.directory,
                                                               loader=loader))
        assert_clear(message, "savedmodel", variables,
                     rf"symbolic link to {elsewhere.path / 'variables'}, outside the artifact")
        assert OPT_IN in message
    out = persist("savedmodel", tmp_path / "unsafe", unsafe=True).restore(artifact.directory)(X)
    np.testing.assert_allclose(out[0], as_output_list(run_model(other, X))[0], rtol=1e-5,
                               atol=1e-6)


#: A file of each artifact moved outside it and symlinked back; the main file of a one-file
#: format is already refused by the manifest check (restored through its Artifact object,
#: the directory walk refuses it too).
SYMLINKED = {"pb": "model.pb", "h5": "model.h5", "keras": "model.keras",
             "weights_h5": "model.weights.h5", "ckpt": "model.data-00000-of-00001",
             "tf_checkpoint": "ckpt.index", "savedmodel": "saved_model/saved_model.pb"}
#: Keras 2 (TF 2.15) writes its legacy weights file under another name.
SYMLINKED_KERAS2 = {**SYMLINKED, "weights_h5": "model_weights.h5"}


@pytest.mark.parametrize("fmt", list(SYMLINKED))
def test_a_file_symlinked_outside_the_artifact_is_refused(fmt, tmp_path):
    artifact = saved(fmt, tmp_path)
    link = artifact.directory / (SYMLINKED_KERAS2 if model_zoo.keras_major() == 2
                                 else SYMLINKED)[fmt]
    outside = tmp_path / "outside" / link.name
    outside.parent.mkdir()
    shutil.move(link, outside)
    link.symlink_to(outside)
    build = {"build": named} if fmt in ("weights_h5", "tf_checkpoint") else {}
    for what in (artifact.directory, artifact):  # what a test restores: a directory, a save
        message = failure(lambda what=what: persist(fmt, tmp_path / "safe").restore(what,
                                                                                    **build))
        if what == artifact.directory and link == artifact.path:
            assert_clear(message, fmt, link, "outside the artifact's directory: refused")
            continue
        assert_clear(message, fmt, link, f"symbolic link to {outside}, outside the artifact")
        assert OPT_IN in message


def test_a_symlink_inside_the_artifact_is_fine(tmp_path):
    artifact = saved("h5", tmp_path)
    real = artifact.directory / "real.h5"
    shutil.move(artifact.path, real)
    artifact.path.symlink_to("real.h5")
    out = persist("h5", tmp_path / "safe").restore(artifact.directory)(X)
    assert out[0].shape == (3, 3)


# ---- item 6: declared sizes -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["tf_checkpoint", "ckpt", "savedmodel"])
def test_checkpoint_index_claiming_a_huge_tensor_is_refused_before_allocating(fmt, tmp_path):
    artifact = saved(fmt, tmp_path)
    prefix = {"tf_checkpoint": artifact.path, "ckpt": artifact.directory / "model",
              "savedmodel": artifact.path / "variables" / "variables"}[fmt]
    key = cf.claim_huge_tensor(str(prefix))
    kwargs = {"build": named} if fmt == "tf_checkpoint" else {}
    message = failure(lambda: persist(fmt, tmp_path / "safe").restore(artifact.directory,
                                                                      **kwargs))
    assert_clear(message, fmt, f"{prefix}.index",
                 rf"{key!r}.* declares float32\[1000000000\] \(4,000,000,000 bytes\) but the "
                 r"data files hold [\d,]+ bytes in all")
    assert OPT_IN in message


def test_checkpoint_index_claim_is_refused_before_the_c_api_loads_it(tmp_path):
    from pytest_modelpersist.errors import LoaderError

    artifact = saved("savedmodel", tmp_path)
    prefix = artifact.path / "variables" / "variables"
    cf.claim_huge_tensor(str(prefix))
    restored = persist("savedmodel", tmp_path / "safe").restore(artifact.directory,
                                                                 loader="capi")
    with pytest.raises(LoaderError) as info:
        restored(X)
    message = str(info.value)
    assert message.startswith("[savedmodel] C API loader: ") and f"{prefix}.index" in message
    assert "declares float32[1000000000] (4,000,000,000 bytes)" in message and OPT_IN in message


@pytest.mark.parametrize("fmt", ["h5", "weights_h5"])
def test_interface_readers_refuse_h5_files_reaching_other_files(fmt, tmp_path):
    from pytest_modelpersist.interface.keras_files import (
        legacy_h5_interface,
        weights_h5_interface,
    )

    artifact = saved(fmt, tmp_path)
    cf.redirect_dataset(artifact.path, kernel(fmt), "virtual_dataset", tmp_path / "outside")
    read = legacy_h5_interface if fmt == "h5" else weights_h5_interface
    with pytest.raises(containment.UnsafeArtifactError, match="a virtual dataset"):
        read(artifact.path)


def test_checkpoint_index_refusal_keeps_memory_bounded(tmp_path):
    artifact = saved("tf_checkpoint", tmp_path)
    cf.claim_huge_tensor(str(artifact.path), elements=1 << 31)  # 8 GiB declared
    out, growth = child_peak_growth("""
        import pathlib, model_zoo
        from pytest_modelpersist.persist import CheckOptions, Persist
        from pytest_modelpersist.formats.tf2 import TFCheckpointFormat
        try:
            Persist(TFCheckpointFormat(), tmp_path=pathlib.Path(sys.argv[2]),
                    options=CheckOptions(golden=False)).restore(
                        sys.argv[1], build=model_zoo.sequential)
        except BaseException as exc:
            print("REFUSED", exc)
    """, str(artifact.directory), str(tmp_path / "child"))
    assert "REFUSED [tf_checkpoint] restore" in out and "8,589,934,592 bytes" in out, out
    assert growth < 64, f"peak RSS grew {growth:.0f} MiB"


@pytest.mark.parametrize("fmt", ["ckpt", "savedmodel"])
def test_pyfunc_in_a_meta_graph_or_savedmodel_is_refused_and_never_runs(fmt, tmp_path):
    effect = tmp_path / "effect"
    model = crafted.graph_model(crafted.py_func(effect), variable=True)
    artifact = persist(fmt, tmp_path / "save").save(model, inputs=X)
    assert not effect.exists()
    message = failure(lambda: persist(fmt, tmp_path / "safe").restore(artifact.directory)(X))
    assert_clear(message, fmt, artifact.directory, r"\(PyFunc\)")
    assert OPT_IN in message and not effect.exists()


def enormous(config: dict, units: tuple[int, int]) -> None:
    """Set the two Dense layers' units of a serialized sequential() config."""
    dense = [c for c in cf.layer_configs(config) if c["class_name"] == "Dense"]
    for layer, u in zip(dense, units, strict=True):
        layer["config"]["units"] = u


@pytest.mark.parametrize("units, cause", [
    ((10**9, 3), r"the model config sets d1\.units=1000000000, beyond the limit of "
                 r"16,777,216 for a layer size"),
    ((40_000, 40_000), r"the model config would build about 1,600,\d{3},\d{3} parameters "
                       r"\(~6\.0 GiB as float32\), beyond the limit of 4 GiB"),
])
@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_keras_config_with_enormous_units_is_refused_before_building(fmt, units, cause,
                                                                     tmp_path):
    artifact = saved(fmt, tmp_path)
    if fmt == "keras":
        cf.edit_keras_config(artifact.path, lambda c: enormous(c, units))
    else:
        import h5py

        with h5py.File(artifact.path, "r+") as f:
            config = json.loads(f.attrs["model_config"])
            enormous(config, units)
            f.attrs["model_config"] = json.dumps(config)
    out, growth = child_peak_growth(f"""
        import pathlib
        from pytest_modelpersist.persist import CheckOptions, Persist
        from pytest_modelpersist.formats import BUILTIN_FORMATS
        fmt = {{c.name: c for c in BUILTIN_FORMATS}}[{fmt!r}]()
        try:
            Persist(fmt, tmp_path=pathlib.Path(sys.argv[2]),
                    options=CheckOptions(golden=False)).restore(sys.argv[1])
        except BaseException as exc:
            print("REFUSED", exc)
    """, str(artifact.directory), str(tmp_path / "child"))
    assert f"REFUSED [{fmt}] restore {artifact.path}" in out, out
    assert_clear(out.split("REFUSED ", 1)[1], fmt, artifact.path, cause)
    assert OPT_IN in out
    assert growth < 64, f"peak RSS grew {growth:.0f} MiB"


def test_config_estimate_stays_near_honest_models():
    """The estimate must not refuse ordinary models: within a small factor of the truth."""
    keras = model_zoo.import_keras()
    inp = keras.Input((20,), dtype="int32")
    x = keras.layers.Embedding(30_000, 256)(inp)
    x = keras.layers.LSTM(128)(x)
    model = keras.Model(inp, keras.layers.Dense(30_000)(x))
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    params, oversized = containment.estimate_parameters(config)
    assert oversized is None
    assert model.count_params() / 2 < params < model.count_params() * 2
