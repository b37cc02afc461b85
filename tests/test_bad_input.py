"""Bad inputs: nothing the plugin reads may crash pytest, hang, pass silently or lose a golden.

Every case builds the bad input from real files (a real save, then damage; a real golden, then
damage) and asserts what the user sees: a failure whose message names the format, the file and
the cause. The README's "Bad inputs" table lists these cases.

* model files, per format (tests/damage.py): truncated, garbage, empty, a missing part, a Git
  LFS pointer, a file of another format under the expected name, a broken `.keras` member;
  a directory restored with the wrong format, or with a damaged/crafted manifest;
* code in model files: a Keras Lambda layer is refused by default (`.keras` and `.h5`), its
  code provably does not run, and `@pytest.mark.persist(unsafe=True)` opts in;
* goldens: truncated / object-array / LFS-pointer / inconsistent / huge-header files, read
  directly and through a pytest run (fail with the cause, --update-golden repairs);
* golden names from odd test ids stay inside the golden directory;
* a read-only golden directory (and one whose path is a file): a clear failure, no writes;
* SIGKILL in the middle of --update-golden (10 kills): every golden intact, old or new;
* `-n 2 --update-golden` with writers disagreeing on the same goldens: every golden valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import damage
import numpy as np
import pytest

from pytest_modelpersist import golden as gf
from pytest_modelpersist.formats import BUILTIN_FORMATS, OPT_IN
from pytest_modelpersist.persist import CheckOptions, Persist

import model_zoo

FORMATS = {cls.name: cls for cls in BUILTIN_FORMATS}
X = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)


def failure(call: Any) -> str:
    """The message of the pytest failure `call()` must raise."""
    with pytest.raises(pytest.fail.Exception) as info:
        call()
    return str(info.value)


def assert_clear(message: str, fmt: str, path: Any, cause: str) -> None:
    """Names the format (first), the file, and the cause; no library traceback as the text."""
    assert message.startswith(f"[{fmt}] "), message
    assert str(path) in message, message
    assert re.search(cause, message, re.I | re.S), f"cause {cause!r} not in:\n{message}"
    assert "Traceback (most recent call last)" not in message, message


# ---- model files: every format x every damage -----------------------------------------------


@pytest.fixture(scope="module")
def model_and_donors(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Path]]:
    """One trained-looking model, and a good save of it in every format (the donors)."""
    model = model_zoo.randomize(model_zoo.functional())
    donors = {}
    for name, cls in FORMATS.items():
        persist = Persist(cls(), tmp_path=tmp_path_factory.mktemp(f"donor-{name}"),
                          options=CheckOptions())
        if persist.applies_to(model):  # onnx without its extra: no case here damages it
            continue
        donors[name] = persist.save(model, inputs=X).directory
    return model, donors


@pytest.mark.parametrize("case", damage.DAMAGES, ids=[d.id for d in damage.DAMAGES])
def test_damaged_model_files_fail_naming_format_file_and_cause(case, model_and_donors,
                                                               tmp_path):
    model, donors = model_and_donors
    persist = Persist(damage.Damaged(FORMATS[case.format](), case, donors), tmp_path=tmp_path,
                      options=CheckOptions())
    if case.fine_in_keras2 and model_zoo.keras_major() == 2:  # it restores, as saved
        persist.check(model, X, build=model_zoo.functional)
        return
    message = failure(lambda: persist.check(model, X, build=model_zoo.functional))
    assert_clear(message, case.format, tmp_path / "persist" / case.format, case.cause)


@pytest.mark.parametrize("saved_as,restored_as", [("keras", "h5"), ("h5", "keras"),
                                                  ("pb", "savedmodel"), ("keras", "weights_h5"),
                                                  ("tf_checkpoint", "ckpt")])
def test_a_directory_of_another_format_is_refused_not_loaded(saved_as, restored_as,
                                                             model_and_donors, tmp_path):
    # Keras loads a .keras archive whatever asked for it: without the manifest check an h5
    # test restoring a .keras directory would pass without testing h5 at all.
    _, donors = model_and_donors
    persist = Persist(FORMATS[restored_as](), tmp_path=tmp_path, options=CheckOptions())
    message = failure(lambda: persist.restore(donors[saved_as], build=model_zoo.functional))
    assert_clear(message, restored_as, donors[saved_as],
                 rf"holds an artifact of format '{saved_as}'.*not '{restored_as}'")


@pytest.mark.parametrize("manifest,cause", [
    (None, r"modelpersist\.json: not a pytest-modelpersist artifact \(.*No such file"),
    ("{not json", r"modelpersist\.json: not a pytest-modelpersist artifact"),
    ('{"format": "keras"}', r"not a pytest-modelpersist artifact \('path'\)"),
    ('{"format": "keras", "path": "../../../../../etc/hostname", "model_kind": "keras"}',
     r"names .*etc/hostname, outside the artifact's directory: refused"),
    ('{"format": "keras", "path": "/etc/hostname", "model_kind": "keras"}',
     r"names /etc/hostname, outside the artifact's directory: refused"),
], ids=["missing", "not-json", "no-path", "path-escapes", "absolute-path"])
def test_a_damaged_or_crafted_manifest_is_refused(manifest, cause, model_and_donors, tmp_path):
    _, donors = model_and_donors
    directory = tmp_path / "artifact"
    shutil.copytree(donors["keras"], directory)
    if manifest is None:
        (directory / "modelpersist.json").unlink()
    else:
        (directory / "modelpersist.json").write_text(manifest)
    persist = Persist(FORMATS["keras"](), tmp_path=tmp_path, options=CheckOptions())
    assert_clear(failure(lambda: persist.restore(directory)), "keras", directory, cause)


# ---- code in model files: Keras Lambda layers and safe_mode ---------------------------------


def lambda_model(marker: Path) -> Any:
    """A model whose Lambda layer writes `marker` whenever its (serialized) code runs."""
    keras = model_zoo.import_keras()
    code = f"lambda t: (open({str(marker)!r}, 'a').write('ran'), t * 2.0)[1]"
    inp = keras.Input((4,), name="x")
    return keras.Model(inp, keras.layers.Lambda(eval(code))(inp))  # noqa: S307 - our own


@contextlib.contextmanager
def keras_unsafe_globally() -> Iterator[None]:
    """`enable_unsafe_deserialization()` for the block, as a user's conftest may call it
    (Keras 3: `keras.config`; Keras 2: `keras.__internal__`). Neither Keras has a public way
    back, so the previous setting is put back through each version's own state."""
    keras = model_zoo.import_keras()
    if model_zoo.keras_major() == 2:
        from keras.src.saving import serialization_lib

        before = getattr(serialization_lib.SAFE_MODE, "safe_mode", None)
        keras.__internal__.enable_unsafe_deserialization()
        try:
            yield
        finally:
            serialization_lib.SAFE_MODE.safe_mode = before
        return
    from keras.src.backend.common import global_state

    before = global_state.get_global_attribute("safe_mode_saving")
    keras.config.enable_unsafe_deserialization()
    try:
        yield
    finally:
        global_state.set_global_attribute("safe_mode_saving", before)


@pytest.mark.parametrize("fmt_name", ["keras", "h5"])
def test_lambda_code_in_a_file_never_runs_unless_the_test_opts_in(fmt_name, tmp_path):
    marker = tmp_path / "the-file's-code-ran"
    artifact = Persist(FORMATS[fmt_name](), tmp_path=tmp_path / "save",
                       options=CheckOptions()).save(lambda_model(marker), inputs=X)
    marker.unlink()  # building the model ran the function once; loading must not
    safe = Persist(FORMATS[fmt_name](), tmp_path=tmp_path / "safe", options=CheckOptions())

    message = failure(lambda: safe.restore(artifact.directory))
    assert_clear(message, fmt_name, artifact.path, r"Lambda")
    assert "opt in for this test only: @pytest.mark.persist(unsafe=True)" in message
    assert not marker.exists()
    with keras_unsafe_globally():  # the plugin passes safe_mode=True explicitly
        failure(lambda: safe.restore(artifact.directory))
    assert not marker.exists()

    # Opted in, the code is real: it runs (so the refusal above was what kept it from running).
    unsafe = Persist(FORMATS[fmt_name](), tmp_path=tmp_path / "unsafe",
                     options=CheckOptions(safe_mode=False))
    outputs = unsafe.restore(artifact.directory)(X)
    np.testing.assert_array_equal(outputs[0], X * 2.0)
    assert marker.read_text().startswith("ran")


def file_writing_graph(marker: Path) -> Any:
    """A TF1 graph model whose output depends on a WriteFile op (what a crafted .pb holds)."""
    tf = model_zoo.import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        write = tf.io.write_file(str(marker), "ran")
        with tf.control_dependencies([write]):
            y = tf.identity(x * 2.0, name="y")
    from pytest_modelpersist import GraphModel

    return GraphModel(tf.compat.v1.Session(graph=graph), inputs=[x], outputs=[y])


def test_frozen_graph_that_writes_files_is_refused_unless_the_test_opts_in(tmp_path):
    marker = tmp_path / "the-graph-wrote-this"
    artifact = Persist(FORMATS["pb"](), tmp_path=tmp_path / "save",
                       options=CheckOptions()).save(file_writing_graph(marker), inputs=X)
    assert not marker.exists()
    safe = Persist(FORMATS["pb"](), tmp_path=tmp_path / "safe", options=CheckOptions())
    message = failure(lambda: safe.restore(artifact.directory))
    assert_clear(message, "pb", artifact.path, r"ops that read or write files .*WriteFile")
    assert "opt in for this test only: @pytest.mark.persist(unsafe=True)" in message
    assert not marker.exists()

    unsafe = Persist(FORMATS["pb"](), tmp_path=tmp_path / "unsafe",
                     options=CheckOptions(safe_mode=False))
    np.testing.assert_array_equal(unsafe.restore(artifact.directory)(X)[0], X * 2.0)
    assert marker.read_text() == "ran"  # the op was real


def test_unsafe_marker_opts_in_per_test(pytester):
    pytester.makepyfile(test_lambda=textwrap.dedent(
        """
        import numpy as np
        import pytest
        import keras

        def build():
            inp = keras.Input((3,), name="x")
            return keras.Model(inp, keras.layers.Lambda(lambda t: t * 2.0 + 1.0)(inp))

        X = np.ones((2, 3), np.float32)

        @pytest.mark.persist(formats=["keras", "h5"], golden=False)
        def test_safe_by_default(persist):
            persist.check(build(), X)

        @pytest.mark.persist(formats=["keras", "h5"], golden=False, unsafe=True)
        def test_opted_in(persist):
            persist.check(build(), X)
        """
    ))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    for fmt, file in (("keras", "model.keras"), ("h5", "model.h5")):
        result.stdout.fnmatch_lines([
            f"*[[]{fmt}[]] restore */{file} failed: ValueError: *Lambda*",
            "*opt in for this test only: @pytest.mark.persist(unsafe=True)",
        ])


# ---- goldens, read directly ---------------------------------------------------------------

GOOD = {"a": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
        "b": np.array([1, 2, 3], np.int64)}


class Unpickled:
    """Unpickling this creates a file: proof that an object array was (not) unpickled."""

    marker: Path

    def __reduce__(self) -> Any:
        return (open, (str(self.marker), "w"))


def _npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _names(sidecar: Path) -> list[str]:
    return list(json.loads(sidecar.read_text())["outputs"])


def _arrays(arrays: Path) -> dict[str, np.ndarray]:
    with np.load(arrays) as npz:
        return {name: npz[name] for name in npz.files}


def _crcs(npz: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(npz)) as zf:
        return {i.filename[:-4]: f"{i.CRC:08x}" for i in zf.infolist()}


def _edit_sidecar(sidecar: Path, first: dict[str, Any] | None = None,
                  second: dict[str, Any] | None = None) -> None:
    """Update fields of the golden's first and/or second output in its sidecar."""
    doc = json.loads(sidecar.read_text())
    names = list(doc["outputs"])
    for name, fields in ((names[0], first), (names[1], second)):
        doc["outputs"][name].update(fields or {})
    sidecar.write_text(json.dumps(doc))


def _with_first(sidecar: Path, arrays: Path, replace: Any) -> bytes:
    """Rewrite the arrays file with its first output replaced by `replace(old)`."""
    content = _arrays(arrays)
    first = _names(sidecar)[0]
    content[first] = replace(content[first])
    data = _npz(**content)
    arrays.write_bytes(data)
    return data


def _evil(old: np.ndarray) -> np.ndarray:
    evil = np.empty(1, dtype=object)
    evil[0] = Unpickled()
    return evil


def _object_npz_consistent(sidecar: Path, arrays: Path, tmp: Path) -> None:
    Unpickled.marker = tmp / "unpickled"
    data = _with_first(sidecar, arrays, _evil)  # and a sidecar that agrees: only the dtype
    _edit_sidecar(sidecar, {"dtype": "object", "shape": [1],  # refuses it
                            "crc32": _crcs(data)[_names(sidecar)[0]]})


def _object_npz_stale_sidecar(sidecar: Path, arrays: Path, tmp: Path) -> None:
    Unpickled.marker = tmp / "unpickled"
    _with_first(sidecar, arrays, _evil)


def _huge_header(sidecar: Path, arrays: Path, tmp: Path) -> None:
    # A header claiming 2**40 elements over the real (small) data, sidecar agreeing: numpy
    # would allocate terabytes before noticing (MemoryError, or the OOM killer).
    from numpy.lib import format as npy

    names, content = _names(sidecar), _arrays(arrays)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, value in content.items():
            member = io.BytesIO()
            if name == names[0]:
                npy.write_array_header_1_0(member, {"descr": value.dtype.str,
                                                    "fortran_order": False, "shape": (2**40,)})
                member.write(value.tobytes())
            else:
                np.save(member, value)
            zf.writestr(f"{name}.npy", member.getvalue())
    arrays.write_bytes(buf.getvalue())
    _edit_sidecar(sidecar, {"shape": [2**40], "crc32": _crcs(buf.getvalue())[names[0]]})


def _flip_last_data_bytes(sidecar: Path, arrays: Path, tmp: Path) -> None:
    """Flip the first member's last 8 data bytes: its recorded CRC-32 no longer matches."""
    with zipfile.ZipFile(arrays) as zf:
        info = zf.getinfo(_names(sidecar)[0] + ".npy")
    data = bytearray(arrays.read_bytes())
    name_len, extra_len = (int.from_bytes(data[info.header_offset + k:info.header_offset + k + 2],
                                          "little") for k in (26, 28))
    end = info.header_offset + 30 + name_len + extra_len + info.compress_size
    data[end - 8:end] = bytes(b ^ 0xFF for b in data[end - 8:end])
    arrays.write_bytes(bytes(data))


def _rename_second(sidecar: Path, arrays: Path, tmp: Path) -> None:
    second = _names(sidecar)[1]
    sidecar.write_text(sidecar.read_text().replace(f'"{second}"', '"renamed"'))


def _malformed_entry(sidecar: Path, arrays: Path, tmp: Path) -> None:
    second = _names(sidecar)[1]
    sidecar.write_text(sidecar.read_text().replace(f'"{second}": {{', f'"{second}": 5, "x": {{',
                                                   1))


GOLDEN_DAMAGES = {
    "npz truncated": (lambda s, a, t: a.write_bytes(a.read_bytes()[: a.stat().st_size // 2]),
                      "arrays", r"corrupt or truncated arrays file"),
    "npz empty": (lambda s, a, t: a.write_bytes(b""), "arrays", r"corrupt or truncated"),
    "npz garbage": (lambda s, a, t: a.write_bytes(random.Random(1).randbytes(400)), "arrays",
                    r"corrupt or truncated"),
    "npz deleted": (lambda s, a, t: a.unlink(), "arrays", r"missing or unreadable"),
    "npz data bytes flipped": (_flip_last_data_bytes, "arrays", r"Bad CRC-32 for file '\w+.npy'"),
    "npz holds object arrays (pickle), sidecar agrees": (
        _object_npz_consistent, "arrays", r"object arrays, refused"),
    "npz holds object arrays (pickle), sidecar stale": (
        _object_npz_stale_sidecar, "arrays", r"(object arrays, refused|differs from the sidecar)"),
    "npz is a Git LFS pointer": (lambda s, a, t: a.write_bytes(damage.LFS_POINTER), "arrays",
                                 r"Git LFS pointer.*git lfs pull"),
    "sidecar is a Git LFS pointer": (lambda s, a, t: s.write_bytes(damage.LFS_POINTER),
                                     "sidecar", r"Git LFS pointer.*git lfs pull"),
    "npz of other values (sidecar CRC disagrees)": (
        lambda s, a, t: _with_first(s, a, lambda old: old + 1), "arrays",
        r"checksum .* differs from the sidecar's .* disagree"),
    "sidecar lists other outputs": (_rename_second, "arrays",
                                    r"holds \['\w+.npy', '\w+.npy'\] but its sidecar lists"),
    "sidecar shape wrong": (lambda s, a, t: _edit_sidecar(s, {"shape": [3, 2]}), "arrays",
                            r"\w+ is float32\[2, 3\] but its sidecar says float32\[3, 2\]"),
    "sidecar dtype wrong": (lambda s, a, t: _edit_sidecar(s, None, {"dtype": "int32"}), "arrays",
                            r"\w+ is int64\[3\] but its sidecar says int32\[3\]"),
    "npy header claims 2**40 elements": (_huge_header, "arrays",
                                         r"holds 24 bytes of data where .* needs"),
    "sidecar not JSON": (lambda s, a, t: s.write_text("{oops"), "sidecar",
                         r"not a valid golden document"),
    "sidecar empty": (lambda s, a, t: s.write_bytes(b""), "sidecar",
                      r"not a valid golden document"),
    "sidecar output entry malformed": (_malformed_entry, "sidecar",
                                       r"not a valid golden document \(output '\w+' needs"),
    "sidecar names an arrays file outside its directory": (
        lambda s, a, t: s.write_text(s.read_text().replace(a.name, "../../" + a.name)), "sidecar",
        r"names an arrays file outside its directory"),
}


@pytest.mark.parametrize("what", list(GOLDEN_DAMAGES))
def test_damaged_golden_is_refused_naming_file_and_cause(what, tmp_path):
    apply, named, cause = GOLDEN_DAMAGES[what]
    sidecar = tmp_path / "goldens" / "t.golden.json"
    written = gf.write_golden(sidecar, list(GOOD.values()), names=list(GOOD), test="t",
                              inputs_crc=None)
    apply(sidecar, written.arrays_path, tmp_path)
    with pytest.raises(gf.GoldenError) as info:
        gf.read_golden(sidecar)
    message = str(info.value)
    assert str(sidecar if named == "sidecar" else written.arrays_path) in message, message
    assert re.search(cause, message, re.S), f"{cause!r} not in {message!r}"
    assert not (tmp_path / "unpickled").exists()  # an object array is never unpickled


GOLDEN_TEST = textwrap.dedent(
    """
    import numpy as np
    import pytest

    @pytest.mark.persist(formats=["pb"])
    def test_out(persist):
        persist.assert_golden([np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
                               np.array([1, 2, 3], np.int64)])
    """
)


def test_damaged_golden_fails_the_test_and_update_golden_repairs_it(pytester):
    pytester.makepyfile(test_g=GOLDEN_TEST)
    sidecar = pytester.path / "goldens" / "test_g" / "test_out.golden.json"
    pytester.runpytest("-p", "no:cacheprovider", "--update-golden").assert_outcomes(passed=1)
    for what in ("npz truncated", "npz holds object arrays (pickle), sidecar agrees",
                 "sidecar is a Git LFS pointer"):
        apply, _, cause = GOLDEN_DAMAGES[what]
        apply(sidecar, gf.read_golden(sidecar).arrays_path, pytester.path)

        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(failed=1)
        text = result.stdout.str()
        assert f"[pb] golden {sidecar.parent}" in text and re.search(cause, text, re.S), text
        assert 're-record it with: pytest "test_g.py::test_out[pb]" --update-golden' in text
        assert not (pytester.path / "unpickled").exists()

        result = pytester.runpytest("-p", "no:cacheprovider", "--update-golden")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["goldens: 0 recorded, 1 updated, * unused*"])
        gf.read_golden(sidecar)  # valid again
    pytester.runpytest("-p", "no:cacheprovider", "--remove-unused-goldens")
    assert sorted(p.name for p in sidecar.parent.iterdir()) == sorted(
        [sidecar.name, gf.read_golden(sidecar).arrays_path.name])


# ---- golden names from odd test ids ---------------------------------------------------------

ODD_IDS = ["../../escape", "/etc/passwd", "a\\b", "..", ".", "CON", "nul.txt", "a/b", "a_b",
           "a?b", "\u202eevil.exe", "日本語", "emoji-\U0001F600", "tab\there", "e\u0301",
           "x" * 5000, "ü" * 300, " lead and trail ", "-dash", "a:b*c|d<e>f\"g"]


def test_golden_files_of_odd_test_ids_stay_in_the_golden_directory(pytester):
    pytester.makeini(
        "[pytest]\ndisable_test_id_escaping_and_forfeit_all_rights_to_community_support = true\n")
    pytester.makepyfile(test_odd=textwrap.dedent(
        f"""
        import numpy as np
        import pytest

        IDS = {ODD_IDS!r}

        @pytest.mark.persist(formats=["pb"])
        @pytest.mark.parametrize("case", range(len(IDS)), ids=IDS)
        def test_odd(persist, case):
            persist.assert_golden(np.array([case], np.int64))
            persist.assert_golden(np.array([case * 10]), name="../../up-" + IDS[case][:80])
        """
    ))
    n = len(ODD_IDS)
    pytester.runpytest("-p", "no:cacheprovider", "--update-golden").assert_outcomes(passed=n)
    store = pytester.path / "goldens" / "test_odd"
    written = [p for p in pytester.path.rglob("*") if p.is_file() and "__pycache__" not in
               p.parts and p.name not in ("test_odd.py", "tox.ini")]
    assert written and all(store in p.parents for p in written), written
    assert all(p.parent == store and p.name.isascii() and len(p.name) <= 120 for p in written)
    assert len(gf.goldens_in(store)) == 2 * n  # every id got its own two goldens
    # each golden holds its own test's values: a shared or misread file would fail here
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=n)


# ---- a golden directory that cannot be written ----------------------------------------------


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[str]:
    """Make `directory` unwritable for this process; yields how.

    root ignores permission bits, so as root the directory is made immutable (`chattr +i`,
    which binds root too, on filesystems that support it); otherwise chmod 0o555.
    """
    if os.geteuid() != 0:
        directory.chmod(0o555)
        how = "chmod 0o555"
    else:
        done = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"running as root and `chattr +i` failed ({done.stderr.strip()}): "
                        "no way to make a directory read-only for root here")
        how = "chattr +i (root)"
    try:
        probe = directory / ".probe"
        with contextlib.suppress(OSError):
            probe.write_text("x")
            probe.unlink()
            pytest.skip(f"{how} did not make {directory} read-only")
        yield how
    finally:
        if os.geteuid() != 0:
            directory.chmod(0o755)
        else:
            subprocess.run(["chattr", "-i", str(directory)], check=True)


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir())}


RO_TEST = textwrap.dedent(
    """
    import os
    import numpy as np
    import pytest

    @pytest.mark.persist(formats=["pb"])
    def test_changed(persist):
        persist.assert_golden(np.full(3, float(os.environ.get("VALUE", "1"))))

    @pytest.mark.persist(formats=["pb"])
    def test_new(persist):
        persist.assert_golden(np.zeros(2))
    """
)


def test_read_only_golden_directory_fails_clearly_and_writes_nothing(pytester, monkeypatch):
    pytester.makepyfile(test_ro=RO_TEST)
    args = ("-p", "no:cacheprovider")
    pytester.runpytest(*args, "--update-golden", "-k", "test_changed").assert_outcomes(passed=1)
    store = pytester.path / "goldens" / "test_ro"
    before = _digest(store)
    monkeypatch.setenv("VALUE", "2")
    with read_only(store) as how:
        result = pytester.runpytest(*args, "--update-golden")
        assert _digest(store) == before, how  # no partial write, no temp file
    result.assert_outcomes(failed=2)
    result.stdout.re_match_lines([
        rf".*\[pb\] write golden {re.escape(str(store))}/test_changed.golden.json failed: "
        r"PermissionError: \[Errno \d+\] (Operation not permitted|Permission denied)",
        rf".*\[pb\] write golden {re.escape(str(store))}/test_new.golden.json failed: "
        r"PermissionError",
    ])
    monkeypatch.setenv("VALUE", "1")  # the old golden is intact and still matches
    pytester.runpytest(*args, "-k", "test_changed").assert_outcomes(passed=1)


def test_golden_directory_path_that_is_a_file_fails_clearly(pytester):
    pytester.makepyfile(test_ro=RO_TEST)
    blocker = pytester.path / "blocker"
    blocker.write_text("a file where the golden directory should be\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--golden-dir=blocker",
                                "--update-golden")
    result.assert_outcomes(failed=2)
    result.stdout.re_match_lines([
        rf".*\[pb\] write golden {re.escape(str(blocker))}/test_ro/test_changed.golden.json "
        r"failed: (FileExistsError|NotADirectoryError)",
    ])
    assert blocker.read_text() == "a file where the golden directory should be\n"
    result = pytester.runpytest("-p", "no:cacheprovider", "--golden-dir=blocker")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        ["*[[]pb[]] golden missing: */blocker/test_ro/test_new.golden.json"])


# ---- SIGKILL in the middle of --update-golden -------------------------------------------------

KILL_TEST = textwrap.dedent(
    """
    import os
    from pathlib import Path

    import numpy as np
    import pytest

    N = int(os.environ["GOLDEN_N"])
    VERSION = float(os.environ["GOLDEN_VERSION"])

    @pytest.fixture(autouse=True)
    def started(persist):  # after the persist fixture imported TensorFlow: writes begin
        first = Path(os.environ["GOLDEN_STARTED"])
        if not first.exists():
            first.touch()
        yield
        Path(os.environ["GOLDEN_STARTED"] + ".done").touch()  # this test's golden written

    @pytest.mark.persist(formats=["pb"])
    @pytest.mark.parametrize("i", range(6))
    def test_big(persist, i):
        persist.assert_golden([np.full(N, VERSION + i, np.float32),
                               np.full(N // 2, -(VERSION + i), np.float64)])
    """
)
KILLS = 5
GOLDEN_N = 2_000_000  # 16 MB per golden (8 MB float32 + 8 MB float64), 96 MB per run


def _run_update(directory: Path, version: int, *, kill_after: float | None = None
                ) -> tuple[int, float]:
    """Run `pytest --update-golden` in `directory`; SIGKILL it `kill_after` s after writes
    begin. Returns (exit status, seconds from the first test's start to the last's end)."""
    started, done = directory / "started", directory / "started.done"
    started.unlink(missing_ok=True)
    done.unlink(missing_ok=True)
    env = {**os.environ, "GOLDEN_N": str(GOLDEN_N), "GOLDEN_VERSION": str(version),
           "GOLDEN_STARTED": str(started), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("CI", None)  # the update is the point here; the plugin refuses it on CI
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--update-golden", "test_kill.py"],
        cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not started.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out = proc.communicate()[0].decode(errors="replace")
            pytest.fail(f"the update run never started its tests:\n{out[-3000:]}")
        time.sleep(0.01)
    if kill_after is not None:
        time.sleep(kill_after)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    out = proc.communicate(timeout=300)[0].decode(errors="replace")
    if kill_after is None and proc.returncode:
        pytest.fail(f"update run failed:\n{out[-3000:]}")
    writing = done.stat().st_mtime - started.stat().st_mtime if done.exists() else 0.0
    return proc.returncode, writing


@pytest.mark.heavy
def test_sigkill_during_update_golden_never_loses_a_golden(tmp_path):
    (tmp_path / "test_kill.py").write_text(KILL_TEST)
    store = tmp_path / "goldens" / "test_kill"
    sidecars = [store / f"test_big[{i}].golden.json" for i in range(6)]
    try:
        _run_update(tmp_path, 0)  # record
        _, duration = _run_update(tmp_path, 1)  # a whole update: how long its tests take
        versions = dict.fromkeys(sidecars, 1)
        mid_update = 0
        rng = random.Random(20)
        for trial in range(2, KILLS + 2):
            # kill moments spread over the update's tests, one in each tenth of that time
            delay = duration * (trial - 2 + rng.random()) / KILLS
            temp_before = set(store.glob(".*.tmp"))
            status, _ = _run_update(tmp_path, trial, kill_after=delay)
            temp_new = set(store.glob(".*.tmp")) - temp_before  # a write cut short
            seen = set()
            for i, sidecar in enumerate(sidecars):
                golden = gf.read_golden(sidecar)  # never raises: intact and consistent
                version = float(golden.arrays[0][0]) - i
                assert version in (versions[sidecar], trial), (trial, i, version)
                # never a mix: both outputs, all elements from the same version
                assert np.all(golden.arrays[0] == version + i)
                assert np.all(golden.arrays[1] == -(version + i))
                versions[sidecar] = version
                seen.add(version == trial)
            assert gf.goldens_in(store) == sorted(sidecars)  # temp files are never goldens
            mid_update += (seen == {True, False}) or bool(temp_new)
            print(f"trial {trial}: kill after {delay:.2f}s of {duration:.2f}s, status {status}, "
                  f"{sum(v == trial for v in versions.values())} of 6 updated, "
                  f"{len(temp_new)} temp file left")
            assert status == -signal.SIGKILL or status == 0, status
        assert mid_update, "no kill landed in the middle of an update: make the goldens bigger"

        # A complete run afterwards records everything; stray files are listed and removable.
        _run_update(tmp_path, 99)
        for i, sidecar in enumerate(sidecars):
            assert float(gf.read_golden(sidecar).arrays[0][0]) == 99 + i
        stray = gf.stray_arrays(store)
        assert all(p.suffix in (".npz", ".tmp") for p in stray)
        print(f"{KILLS} kills, {mid_update} in the middle of an update, "
              f"{len(stray)} stray files left (reported as unused, removable)")
    finally:
        shutil.rmtree(store, ignore_errors=True)  # 100+ MB


# ---- xdist: two workers disagreeing about the same goldens ----------------------------------

SHARED_TEST = textwrap.dedent(
    """
    import os
    import numpy as np
    import pytest

    N = 250_000

    def value(persist, i):
        # Every format item of a test shares its golden. With VARY=1 each format writes
        # different values, so the two workers keep replacing each other's goldens.
        vary = os.environ.get("VARY") == "1"
        return i * 1000.0 + (sum(map(ord, persist.format)) if vary else 0)

    @pytest.mark.parametrize("i", range(6))
    def test_shared(persist, i):
        v = value(persist, i)
        persist.assert_golden([np.full(N, v, np.float32), np.arange(N // 4) + v])
    """
)


@pytest.mark.heavy
def test_xdist_update_golden_with_conflicting_writers_leaves_every_golden_valid(pytester,
                                                                               monkeypatch):
    pytester.makepyfile(test_shared=SHARED_TEST)
    store = pytester.path / "goldens" / "test_shared"
    args = ("-n", "2", "-p", "no:cacheprovider", "--persist-formats=all", "--update-golden")
    in_all = [f for f in FORMATS if f not in OPT_IN]  # what --persist-formats=all selects
    formats = {sum(map(ord, f)) for f in in_all}

    monkeypatch.setenv("VARY", "1")
    result = pytester.runpytest_subprocess(*args, timeout=300)
    # Within one run the first writer of a golden wins and every disagreeing item fails,
    # naming both (issue 15 item 8); the two workers still race for the per-golden lock.
    result.assert_outcomes(passed=6, failed=6 * (len(in_all) - 1))
    result.stdout.fnmatch_lines(["*these outputs are not deterministic: [[]*[]] and [[]*[]] saw "
                                 "different outputs (max abs *)*"])
    sidecars = gf.goldens_in(store)
    assert len(sidecars) == 6
    for sidecar in sidecars:
        golden = gf.read_golden(sidecar)  # valid
        i = int(sidecar.name.split("[")[1].split("]")[0])
        v = float(golden.arrays[0][0])
        assert np.all(golden.arrays[0] == v)  # never a mix of two writers
        assert np.array_equal(golden.arrays[1], np.arange(len(golden.arrays[1])) + v)
        assert v - i * 1000.0 in formats, (sidecar, v)  # one of the writers' values
    # one arrays file per sidecar: no orphan, no temp file
    assert len(list(store.iterdir())) == 12, sorted(p.name for p in store.iterdir())
