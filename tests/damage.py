"""Ways to break a saved model's files, one per bad input the plugin must report clearly.

Each `Damage` is applied to the directory of a real, freshly saved artifact (the files TF and
Keras wrote), so the plugin meets exactly the bytes a user's broken checkout would hold.
`donors` maps a format name to the directory of a good save of the same model in that format:
the source of "a file of another format under the expected name".

Used by tests/test_bad_input.py (the cases) and by the README table of bad inputs.
"""

from __future__ import annotations

import random
import shutil
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_modelpersist.formats.base import WrappedFormat

Donors = Mapping[str, Path]
Apply = Callable[[Path, Donors], None]

CKPT_DATA = "model.data-00000-of-00001"
TF2_DATA = "ckpt.data-00000-of-00001"
SM = "saved_model"


@dataclass(frozen=True)
class Damage:
    """One bad input: which format, what kind, how it is made, what the message must say."""

    format: str
    kind: str  # truncated | garbage | empty | missing part | other format | broken member
    what: str  # the damage in words (README table)
    apply: Apply
    cause: str  # a regex the failure message must match (case-insensitive): the cause
    #: Why the file is no bad input for Keras 2 (TF 2.15's `keras`), where it restores as saved.
    fine_in_keras2: str = ""

    @property
    def id(self) -> str:
        slug = "".join(c if c.isalnum() else "-" for c in self.what.lower()).strip("-")
        while "--" in slug:
            slug = slug.replace("--", "-")
        return f"{self.format}:{slug}"


class Damaged(WrappedFormat):
    """A built-in format whose save writes the real files, then damages them."""

    def __init__(self, inner: Any, damage: Damage, donors: Donors) -> None:
        super().__init__(inner)
        self.damage, self.donors = damage, donors

    def save(self, model: Any, directory: Path, *, inputs: Any) -> Any:
        artifact = self.inner.save(model, directory, inputs=inputs)
        self.damage.apply(artifact.directory, self.donors)
        return artifact


# ---- primitives -------------------------------------------------------------------------------

#: Keras 2's name for a file Keras 3 names otherwise (weights_h5 writes the legacy
#: layer-named `model_weights.h5` for a Keras 2 model, TF 2.15's own `keras`).
KERAS2_NAMES = {"model.weights.h5": "model_weights.h5"}


def at(directory: Path, rel: str) -> Path:
    """`directory / rel`, or the Keras 2 name of that file where that is what was saved."""
    path, alias = directory / rel, KERAS2_NAMES.get(rel)
    if alias and not path.exists() and (directory / alias).exists():
        return directory / alias
    return path



def truncate(rel: str, keep: float = 0.5) -> Apply:
    def apply(directory: Path, donors: Donors) -> None:
        path = at(directory, rel)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])

    return apply


def garbage(rel: str, seed: int = 6) -> Apply:
    """Same size, random bytes (deterministic)."""

    def apply(directory: Path, donors: Donors) -> None:
        path = at(directory, rel)
        size = max(path.stat().st_size, 64)
        path.write_bytes(random.Random(seed).randbytes(size))

    return apply


def empty(rel: str) -> Apply:
    def apply(directory: Path, donors: Donors) -> None:
        at(directory, rel).write_bytes(b"")

    return apply


def delete(rel: str) -> Apply:
    def apply(directory: Path, donors: Donors) -> None:
        path = at(directory, rel)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    return apply


def replace_with(rel: str, donor_format: str, donor_rel: str) -> Apply:
    """Put another format's file (or directory) where this format's file is expected."""

    def apply(directory: Path, donors: Donors) -> None:
        target, source = at(directory, rel), at(donors[donor_format], donor_rel)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)

    return apply


LFS_POINTER = (b"version https://git-lfs.github.com/spec/v1\n"
               b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
               b"size 18472\n")


def lfs_pointer(rel: str) -> Apply:
    """What a checkout without `git lfs pull` holds in place of the file."""

    def apply(directory: Path, donors: Donors) -> None:
        at(directory, rel).write_bytes(LFS_POINTER)

    return apply


def write_text(rel: str, text: str) -> Apply:
    def apply(directory: Path, donors: Donors) -> None:
        at(directory, rel).write_text(text)

    return apply


def rewrite_member(rel: str, member: str, change: Callable[[bytes], bytes]) -> Apply:
    """Rewrite one member of a zip archive (a `.keras` file), keeping the others."""

    def apply(directory: Path, donors: Donors) -> None:
        path = at(directory, rel)
        tmp = path.with_name(path.name + ".rewrite")
        with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp, "w") as zout:
            for item in zin.infolist():
                data = zin.read(item.filename)
                zout.writestr(item, change(data) if item.filename == member else data)
        tmp.replace(path)

    return apply


def drop_member(rel: str, member: str) -> Apply:
    """Remove one member of a zip archive."""

    def apply(directory: Path, donors: Donors) -> None:
        path = at(directory, rel)
        tmp = path.with_name(path.name + ".rewrite")
        with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp, "w") as zout:
            for item in zin.infolist():
                if item.filename != member:
                    zout.writestr(item, zin.read(item.filename))
        tmp.replace(path)

    return apply


def flip_stored_bytes(rel: str, member: str) -> Apply:
    """Flip bytes inside a zip member's stored data, leaving its recorded CRC-32 stale."""

    def apply(directory: Path, donors: Donors) -> None:
        path = at(directory, rel)
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(member)
        data = bytearray(path.read_bytes())
        # local header: 30 bytes + name + extra, then the (stored) data
        name_len = int.from_bytes(data[info.header_offset + 26: info.header_offset + 28], "little")
        extra_len = int.from_bytes(data[info.header_offset + 28: info.header_offset + 30],
                                   "little")
        start = info.header_offset + 30 + name_len + extra_len
        middle = start + info.compress_size // 2
        for i in range(middle, min(middle + 64, start + info.compress_size)):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))

    return apply


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


# ---- the catalogue ----------------------------------------------------------------------------

SM_DATA = f"{SM}/variables/variables.data-00000-of-00001"
NO_FILE = r"No such file or directory"
# Keras 3 / Keras 2 (TF 2.15) on a missing file; TF 2.21 / TF 2.15 on a corrupt protobuf
NO_FILE_KERAS = r"(?:No such file or directory|File not found|No file or directory found at)"
PB_CORRUPT = r"(?:Wire format was corrupt|Error parsing message)"
NOT_TEXT = r"not text where text or a protobuf was expected: corrupt, truncated"
LFS = r"is a Git LFS pointer, not the file: run `git lfs pull`"
NOT_INDEX = r"is not a checkpoint index \(an SSTable\): truncated, corrupt"
SHORT_READ = r"Read less bytes than requested"
BAD_CHECKSUM = r"checksum does not match"
D = Damage

DAMAGES: list[Damage] = [
    # ckpt: TF1 Saver checkpoint, restored through the `checkpoint` state file
    D("ckpt", "truncated", "model.index cut to half", truncate("model.index"),
      rf"model\.index {NOT_INDEX}"),
    D("ckpt", "truncated", f"{CKPT_DATA} cut to half", truncate(CKPT_DATA), SHORT_READ),
    D("ckpt", "truncated", "model.meta cut to half", truncate("model.meta"), NOT_TEXT),
    D("ckpt", "garbage", "model.index replaced by random bytes", garbage("model.index"),
      rf"not an sstable.*model\.index {NOT_INDEX}"),
    D("ckpt", "garbage", f"{CKPT_DATA} replaced by random bytes", garbage(CKPT_DATA),
      BAD_CHECKSUM),
    D("ckpt", "garbage", "model.meta replaced by random bytes", garbage("model.meta"), NOT_TEXT),
    D("ckpt", "garbage", "`checkpoint` state file replaced by random bytes",
      garbage("checkpoint"), NOT_TEXT),
    D("ckpt", "empty", "model.index empty", empty("model.index"),
      r"too short to be an sstable.*model\.index is empty"),
    D("ckpt", "empty", f"{CKPT_DATA} empty", empty(CKPT_DATA), rf"{CKPT_DATA} is empty"),
    D("ckpt", "empty", "model.meta empty", empty("model.meta"),
      r"holds no variables to restore.*model\.meta is empty"),
    D("ckpt", "empty", "`checkpoint` state file empty", empty("checkpoint"),
      r"Invalid checkpoint state.*checkpoint is empty"),
    D("ckpt", "missing part", f"{CKPT_DATA} deleted", delete(CKPT_DATA),
      rf"{CKPT_DATA}; {NO_FILE}.*model\.index has no data file"),
    D("ckpt", "missing part", "model.index deleted", delete("model.index"),
      r"the 'checkpoint' state file .* names .*model', which is not there"),
    D("ckpt", "missing part", "`checkpoint` state file names a missing prefix",
      write_text("checkpoint", 'model_checkpoint_path: "gone"\n'
                               'all_model_checkpoint_paths: "gone"\n'),
      r"names .*gone', which is not there; checkpoints present: model"),
    D("ckpt", "other format", "model.index is a Keras .h5 file",
      replace_with("model.index", "h5", "model.h5"), rf"model\.index {NOT_INDEX}"),
    D("ckpt", "other format", "model.meta is a frozen graph .pb",
      replace_with("model.meta", "pb", "model.pb"), NOT_TEXT),
    D("ckpt", "git lfs pointer", f"{CKPT_DATA} is a Git LFS pointer", lfs_pointer(CKPT_DATA),
      rf"{CKPT_DATA} {LFS}"),
    # tf_checkpoint: TF2 object-based checkpoint, read into the rebuilt model
    D("tf_checkpoint", "truncated", "ckpt.index cut to half", truncate("ckpt.index"),
      rf"ckpt\.index {NOT_INDEX}"),
    D("tf_checkpoint", "truncated", f"{TF2_DATA} cut to half", truncate(TF2_DATA), SHORT_READ),
    D("tf_checkpoint", "garbage", "ckpt.index replaced by random bytes", garbage("ckpt.index"),
      rf"ckpt\.index {NOT_INDEX}"),
    D("tf_checkpoint", "garbage", f"{TF2_DATA} replaced by random bytes", garbage(TF2_DATA),
      BAD_CHECKSUM),
    D("tf_checkpoint", "empty", "ckpt.index empty", empty("ckpt.index"),
      r"too short to be an sstable.*ckpt\.index is empty"),
    D("tf_checkpoint", "missing part", f"{TF2_DATA} deleted", delete(TF2_DATA),
      rf"{TF2_DATA}; {NO_FILE}.*ckpt\.index has no data file"),
    D("tf_checkpoint", "missing part", "ckpt.index deleted", delete("ckpt.index"),
      r"Failed to find any matching files for .*/ckpt"),
    D("tf_checkpoint", "other format", "ckpt.* are a TF1 name-based checkpoint",
      lambda d, donors: (replace_with("ckpt.index", "ckpt", "model.index")(d, donors),
                         replace_with(TF2_DATA, "ckpt", CKPT_DATA)(d, donors)),
      r"was incomplete: restored 0; missing from the file"),
    D("tf_checkpoint", "git lfs pointer", f"{TF2_DATA} is a Git LFS pointer",
      lfs_pointer(TF2_DATA), rf"{TF2_DATA} {LFS}"),
    # h5: legacy full-model HDF5
    D("h5", "truncated", "model.h5 cut to half", truncate("model.h5"),
      r"truncated file: eof = \d+"),
    D("h5", "garbage", "model.h5 replaced by random bytes", garbage("model.h5"),
      r"file signature not found.*model\.h5 is not an HDF5 file"),
    D("h5", "empty", "model.h5 empty", empty("model.h5"), r"model\.h5 is empty"),
    D("h5", "missing part", "model.h5 deleted", delete("model.h5"),
      rf"{NO_FILE_KERAS}.*model\.h5 does not exist"),
    D("h5", "other format", "model.h5 is a .keras zip",
      replace_with("model.h5", "keras", "model.keras"),
      r"model\.h5 is a zip archive \(\.keras\), not an HDF5 file"),
    D("h5", "other format", "model.h5 is a .weights.h5 file (no model config)",
      replace_with("model.h5", "weights_h5", "model.weights.h5"), r"No model config found"),
    D("h5", "git lfs pointer", "model.h5 is a Git LFS pointer", lfs_pointer("model.h5"),
      rf"model\.h5 {LFS}"),
    # weights_h5: weights only, loaded into the rebuilt model
    D("weights_h5", "truncated", "model.weights.h5 cut to half", truncate("model.weights.h5"),
      r"truncated file: eof = \d+"),
    D("weights_h5", "garbage", "model.weights.h5 replaced by random bytes",
      garbage("model.weights.h5"), r"file signature not found.*is not an HDF5 file"),
    D("weights_h5", "empty", "model.weights.h5 empty", empty("model.weights.h5"),
      r"model[._]weights\.h5 is empty"),
    D("weights_h5", "missing part", "model.weights.h5 deleted", delete("model.weights.h5"),
      rf"{NO_FILE}.*model[._]weights\.h5 does not exist"),
    D("weights_h5", "other format", "model.weights.h5 is a full-model legacy .h5",
      replace_with("model.weights.h5", "h5", "model.h5"),
      r"was incomplete: restored 0; missing from the file 5: layers/scale/vars/0",
      fine_in_keras2="Keras 2's load_weights reads a full-model .h5's model_weights group"),
    D("weights_h5", "git lfs pointer", "model.weights.h5 is a Git LFS pointer",
      lfs_pointer("model.weights.h5"), rf"model[._]weights\.h5 {LFS}"),
    # keras: the .keras zip archive
    D("keras", "truncated", "model.keras cut to half", truncate("model.keras"),
      r"model\.keras starts like a zip archive but is not a complete one: truncated"),
    D("keras", "garbage", "model.keras replaced by random bytes", garbage("model.keras"),
      r"model\.keras is not a zip archive \(\.keras\) \(unrecognized bytes"),
    D("keras", "empty", "model.keras empty", empty("model.keras"), r"model\.keras is empty"),
    D("keras", "missing part", "model.keras deleted", delete("model.keras"),
      rf"{NO_FILE_KERAS}.*model\.keras does not exist"),
    D("keras", "broken member", "config.json inside model.keras is not JSON",
      rewrite_member("model.keras", "config.json", lambda b: b"{not json" + b[:40]),
      r"JSONDecodeError: Expecting property name"),
    D("keras", "broken member", "model.weights.h5 inside model.keras cut to half",
      rewrite_member("model.keras", "model.weights.h5", half), r"truncated file: eof = \d+"),
    D("keras", "broken member", "model.weights.h5 inside model.keras: bytes flipped, stale CRC",
      flip_stored_bytes("model.keras", "model.weights.h5"),
      r"BadZipFile: Bad CRC-32 for file 'model\.weights\.h5'"),
    D("keras", "missing part", "model.weights.h5 member removed from model.keras",
      drop_member("model.keras", "model.weights.h5"),
      r"Expected a model\.weights\.h5 or model\.weights\.npz file"),
    D("keras", "other format", "model.keras is a legacy .h5 file",
      replace_with("model.keras", "h5", "model.h5"),
      r"model\.keras is an HDF5 file \(\.h5\), not a zip archive"),
    D("keras", "git lfs pointer", "model.keras is a Git LFS pointer", lfs_pointer("model.keras"),
      rf"model\.keras {LFS}"),
    # savedmodel: a directory
    D("savedmodel", "truncated", "saved_model.pb cut to half", truncate(f"{SM}/saved_model.pb"),
      rf"Cannot parse file .*saved_model\.pb.*{PB_CORRUPT}"),
    D("savedmodel", "garbage", "saved_model.pb replaced by random bytes",
      garbage(f"{SM}/saved_model.pb"),
      rf"Cannot parse file .*saved_model\.pb.*{PB_CORRUPT}"),
    D("savedmodel", "empty", "saved_model.pb empty", empty(f"{SM}/saved_model.pb"),
      r"0 MetaGraphs.*saved_model\.pb is empty"),
    D("savedmodel", "missing part", "variables/ deleted", delete(f"{SM}/variables"),
      r"Failed to find any matching files for .*saved_model/variables/variables"),
    D("savedmodel", "missing part", "variables.data-* deleted", delete(SM_DATA),
      rf"variables\.data-00000-of-00001; {NO_FILE}.*variables\.index has no data file"),
    D("savedmodel", "truncated", "variables.data-* cut to half", truncate(SM_DATA), SHORT_READ),
    D("savedmodel", "missing part", "saved_model.pb deleted", delete(f"{SM}/saved_model.pb"),
      r"SavedModel file does not exist at: .*saved_model"),
    D("savedmodel", "other format", "saved_model.pb is a frozen graph .pb",
      replace_with(f"{SM}/saved_model.pb", "pb", "model.pb"),
      r"has no 'serving_default' signature; it has \[\]"),
    D("savedmodel", "git lfs pointer", "variables.data-* is a Git LFS pointer",
      lfs_pointer(SM_DATA), rf"variables\.data-00000-of-00001 {LFS}"),
    # pb: a frozen GraphDef
    D("pb", "truncated", "model.pb cut to half", truncate("model.pb"),
      r"model\.pb: not a binary GraphDef .*truncated or corrupt"),
    D("pb", "garbage", "model.pb replaced by random bytes", garbage("model.pb"),
      r"model\.pb: not a binary GraphDef"),
    D("pb", "empty", "model.pb empty", empty("model.pb"), r"model\.pb: file is empty"),
    D("pb", "missing part", "model.pb deleted", delete("model.pb"),
      rf"{NO_FILE}.*model\.pb does not exist"),
    D("pb", "other format", "model.pb is a .keras zip",
      replace_with("model.pb", "keras", "model.keras"), r"model\.pb: not a binary GraphDef"),
    D("pb", "other format", "model.pb is a SavedModel's saved_model.pb",
      replace_with("model.pb", "savedmodel", f"{SM}/saved_model.pb"),
      r"model\.pb: not a binary GraphDef"),
    D("pb", "git lfs pointer", "model.pb is a Git LFS pointer", lfs_pointer("model.pb"),
      rf"model\.pb {LFS}"),
]
