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

    @property
    def id(self) -> str:
        slug = "".join(c if c.isalnum() else "-" for c in self.what.lower()).strip("-")
        while "--" in slug:
            slug = slug.replace("--", "-")
        return f"{self.format}:{slug}"


class Damaged:
    """A built-in format whose save writes the real files, then damages them."""

    def __init__(self, inner: Any, damage: Damage, donors: Donors) -> None:
        self.inner, self.damage, self.donors = inner, damage, donors
        self.name, self.kinds, self.description = inner.name, inner.kinds, inner.description
        self.needs_build = getattr(inner, "needs_build", False)
        self.rebuild_optional = getattr(inner, "rebuild_optional", False)

    def unsupported(self, model: Any, info: Any) -> str | None:
        return self.inner.unsupported(model, info)

    def save(self, model: Any, directory: Path, *, inputs: Any) -> Any:
        artifact = self.inner.save(model, directory, inputs=inputs)
        self.damage.apply(artifact.directory, self.donors)
        return artifact

    def restore(self, artifact: Any, **options: Any) -> Any:
        return self.inner.restore(artifact, **options)


# ---- primitives -------------------------------------------------------------------------------


def truncate(rel: str, keep: float = 0.5) -> Apply:
    def apply(directory: Path, donors: Donors) -> None:
        path = directory / rel
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])

    return apply


def garbage(rel: str, seed: int = 6) -> Apply:
    """Same size, random bytes (deterministic)."""

    def apply(directory: Path, donors: Donors) -> None:
        path = directory / rel
        size = max(path.stat().st_size, 64)
        path.write_bytes(random.Random(seed).randbytes(size))

    return apply


def empty(rel: str) -> Apply:
    def apply(directory: Path, donors: Donors) -> None:
        (directory / rel).write_bytes(b"")

    return apply


def delete(rel: str) -> Apply:
    def apply(directory: Path, donors: Donors) -> None:
        path = directory / rel
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    return apply


def replace_with(rel: str, donor_format: str, donor_rel: str) -> Apply:
    """Put another format's file (or directory) where this format's file is expected."""

    def apply(directory: Path, donors: Donors) -> None:
        target, source = directory / rel, donors[donor_format] / donor_rel
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
        (directory / rel).write_bytes(LFS_POINTER)

    return apply


def write_text(rel: str, text: str) -> Apply:
    def apply(directory: Path, donors: Donors) -> None:
        (directory / rel).write_text(text)

    return apply


def rewrite_member(rel: str, member: str, change: Callable[[bytes], bytes]) -> Apply:
    """Rewrite one member of a zip archive (a `.keras` file), keeping the others."""

    def apply(directory: Path, donors: Donors) -> None:
        path = directory / rel
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
        path = directory / rel
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
        path = directory / rel
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

DAMAGES: list[Damage] = [
    # ckpt: TF1 Saver checkpoint, restored through the `checkpoint` state file
    Damage("ckpt", "truncated", "model.index cut to half", truncate("model.index"),
           r"model\.index is not a checkpoint index \(an SSTable\): truncated"),
    Damage("ckpt", "truncated", f"{CKPT_DATA} cut to half", truncate(CKPT_DATA),
           r"(corrupt|truncat|data loss|out of range|read less bytes)"),
    Damage("ckpt", "truncated", "model.meta cut to half", truncate("model.meta"),
           r"not text where text or a protobuf was expected: corrupt, truncated"),
    Damage("ckpt", "garbage", "model.index replaced by random bytes", garbage("model.index"),
           r"model\.index is not a checkpoint index"),
    Damage("ckpt", "garbage", f"{CKPT_DATA} replaced by random bytes", garbage(CKPT_DATA),
           r"(checksum|crc|corrupt|data loss)"),
    Damage("ckpt", "garbage", "model.meta replaced by random bytes", garbage("model.meta"),
           r"not text where text or a protobuf was expected: corrupt, truncated"),
    Damage("ckpt", "empty", "model.index empty", empty("model.index"),
           r"too short to be an sstable.*model\.index is empty"),
    Damage("ckpt", "empty", f"{CKPT_DATA} empty", empty(CKPT_DATA),
           rf"{CKPT_DATA} is empty"),
    Damage("ckpt", "empty", "`checkpoint` state file empty", empty("checkpoint"),
           r"checkpoint is empty"),
    Damage("ckpt", "empty", "model.meta empty", empty("model.meta"),
           r"(meta|parse|holds no variables|empty|no variables)"),
    Damage("ckpt", "missing part", f"{CKPT_DATA} deleted", delete(CKPT_DATA),
           r"(not found|no such file|failed to find|unable to open)"),
    Damage("ckpt", "missing part", "model.index deleted", delete("model.index"),
           r"(not found|no such file|failed to find|unable to open|not there)"),
    Damage("ckpt", "missing part", "`checkpoint` state file names a missing prefix",
           write_text("checkpoint", 'model_checkpoint_path: "gone"\n'
                                    'all_model_checkpoint_paths: "gone"\n'),
           r"(no 'checkpoint'|names no checkpoint|not found|gone)"),
    Damage("ckpt", "garbage", "`checkpoint` state file replaced by random bytes",
           garbage("checkpoint"),
           r"not text where text or a protobuf was expected: corrupt, truncated"),
    Damage("ckpt", "other format", "model.index is a Keras .h5 file",
           replace_with("model.index", "h5", "model.h5"),
           r"model\.index is not a checkpoint index"),
    Damage("ckpt", "other format", "model.meta is a frozen graph .pb",
           replace_with("model.meta", "pb", "model.pb"),
           r"not text where text or a protobuf was expected: corrupt, truncated"),
    Damage("ckpt", "git lfs pointer", f"{CKPT_DATA} is a Git LFS pointer",
           lfs_pointer(CKPT_DATA), r"Git LFS pointer.*git lfs pull"),
    # tf_checkpoint: TF2 object-based checkpoint, read into the rebuilt model
    Damage("tf_checkpoint", "truncated", "ckpt.index cut to half", truncate("ckpt.index"),
           r"ckpt\.index is not a checkpoint index \(an SSTable\): truncated"),
    Damage("tf_checkpoint", "truncated", f"{TF2_DATA} cut to half", truncate(TF2_DATA),
           r"(corrupt|truncat|data loss|out of range|read less bytes)"),
    Damage("tf_checkpoint", "garbage", "ckpt.index replaced by random bytes",
           garbage("ckpt.index"), r"ckpt\.index is not a checkpoint index"),
    Damage("tf_checkpoint", "garbage", f"{TF2_DATA} replaced by random bytes", garbage(TF2_DATA),
           r"(checksum|crc|corrupt|data loss)"),
    Damage("tf_checkpoint", "empty", "ckpt.index empty", empty("ckpt.index"),
           r"(corrupt|not an sstable|data loss|unable|too short)"),
    Damage("tf_checkpoint", "missing part", f"{TF2_DATA} deleted", delete(TF2_DATA),
           r"(not found|no such file|failed to find|unable to open)"),
    Damage("tf_checkpoint", "missing part", "ckpt.index deleted", delete("ckpt.index"),
           r"(not found|no such file|failed to find|unable to open)"),
    Damage("tf_checkpoint", "other format", "ckpt.* are a TF1 name-based checkpoint",
           lambda d, donors: (replace_with("ckpt.index", "ckpt", "model.index")(d, donors),
                              replace_with(TF2_DATA, "ckpt", CKPT_DATA)(d, donors)),
           r"(name-based|object graph|not found|missing|incomplete)"),
    # h5: legacy full-model HDF5
    Damage("h5", "truncated", "model.h5 cut to half", truncate("model.h5"),
           r"(truncat|unable to|file signature|eof|corrupt)"),
    Damage("h5", "garbage", "model.h5 replaced by random bytes", garbage("model.h5"),
           r"(file signature|unable to|not an hdf5|format)"),
    Damage("h5", "empty", "model.h5 empty", empty("model.h5"), r"model\.h5 is empty"),
    Damage("h5", "missing part", "model.h5 deleted", delete("model.h5"),
           r"(no such file|not found|unable to)"),
    Damage("h5", "other format", "model.h5 is a .keras zip", replace_with("model.h5", "keras",
                                                                           "model.keras"),
           r"model\.h5 is a zip archive \(\.keras\), not an HDF5 file"),
    Damage("h5", "other format", "model.h5 is a .weights.h5 file (no model config)",
           replace_with("model.h5", "weights_h5", "model.weights.h5"),
           r"(model config|no model|config)"),
    Damage("h5", "git lfs pointer", "model.h5 is a Git LFS pointer", lfs_pointer("model.h5"),
           r"Git LFS pointer.*git lfs pull"),
    # weights_h5: weights only, loaded into the rebuilt model
    Damage("weights_h5", "truncated", "model.weights.h5 cut to half",
           truncate("model.weights.h5"), r"(truncat|unable to|file signature|eof|corrupt)"),
    Damage("weights_h5", "garbage", "model.weights.h5 replaced by random bytes",
           garbage("model.weights.h5"), r"(file signature|unable to|not an hdf5|format)"),
    Damage("weights_h5", "empty", "model.weights.h5 empty", empty("model.weights.h5"),
           r"model\.weights\.h5 is empty"),
    Damage("weights_h5", "missing part", "model.weights.h5 deleted", delete("model.weights.h5"),
           r"(no such file|not found|unable to)"),
    Damage("weights_h5", "other format", "model.weights.h5 is a full-model legacy .h5",
           replace_with("model.weights.h5", "h5", "model.h5"), r"(missing|incomplete|unused)"),
    Damage("weights_h5", "git lfs pointer", "model.weights.h5 is a Git LFS pointer", lfs_pointer("model.weights.h5"),
           r"Git LFS pointer.*git lfs pull"),
    # keras: the .keras zip archive
    Damage("keras", "truncated", "model.keras cut to half", truncate("model.keras"),
           r"model\.keras starts like a zip archive but is not a complete one: truncated"),
    Damage("keras", "garbage", "model.keras replaced by random bytes", garbage("model.keras"),
           r"model\.keras is not a zip archive \(\.keras\) \(unrecognized bytes"),
    Damage("keras", "empty", "model.keras empty", empty("model.keras"),
           r"model\.keras is empty"),
    Damage("keras", "missing part", "model.keras deleted", delete("model.keras"),
           r"(no such file|not found|does not exist)"),
    Damage("keras", "broken member", "config.json inside model.keras is not JSON",
           rewrite_member("model.keras", "config.json", lambda b: b"{not json" + b[:40]),
           r"(json|expecting|decode|config)"),
    Damage("keras", "broken member", "model.weights.h5 inside model.keras cut to half",
           rewrite_member("model.keras", "model.weights.h5", half),
           r"(truncat|unable to|file signature|eof|h5)"),
    Damage("keras", "broken member", "model.weights.h5 inside model.keras: bytes flipped, "
           "stale CRC", flip_stored_bytes("model.keras", "model.weights.h5"),
           r"(crc|bad|corrupt|checksum)"),
    Damage("keras", "missing part", "model.weights.h5 member removed from model.keras",
           drop_member("model.keras", "model.weights.h5"), r"(weights|no item|not found|key)"),
    Damage("keras", "other format", "model.keras is a legacy .h5 file",
           replace_with("model.keras", "h5", "model.h5"),
           r"model\.keras is an HDF5 file \(\.h5\), not a zip archive"),
    Damage("keras", "git lfs pointer", "model.keras is a Git LFS pointer", lfs_pointer("model.keras"),
           r"Git LFS pointer.*git lfs pull"),
    # savedmodel: a directory
    Damage("savedmodel", "truncated", "saved_model.pb cut to half",
           truncate(f"{SM}/saved_model.pb"), r"(parse|protocol|truncat|decode|saved_model\.pb)"),
    Damage("savedmodel", "garbage", "saved_model.pb replaced by random bytes",
           garbage(f"{SM}/saved_model.pb"), r"(parse|protocol|decode|saved_model\.pb)"),
    Damage("savedmodel", "empty", "saved_model.pb empty", empty(f"{SM}/saved_model.pb"),
           r"saved_model\.pb is empty"),
    Damage("savedmodel", "missing part", "variables/ deleted", delete(f"{SM}/variables"),
           r"(variables|not found|no such file)"),
    Damage("savedmodel", "missing part", "variables.data-* deleted",
           delete(f"{SM}/variables/variables.data-00000-of-00001"),
           r"(not found|no such file|failed to find|unable to open)"),
    Damage("savedmodel", "truncated", "variables.data-* cut to half",
           truncate(f"{SM}/variables/variables.data-00000-of-00001"),
           r"(corrupt|truncat|data loss|out of range|read less bytes)"),
    Damage("savedmodel", "missing part", "saved_model.pb deleted",
           delete(f"{SM}/saved_model.pb"), r"(saved_model\.pb|savedmodel|not found|no such)"),
    Damage("savedmodel", "other format", "saved_model.pb is a frozen graph .pb",
           replace_with(f"{SM}/saved_model.pb", "pb", "model.pb"),
           r"(parse|protocol|decode|meta ?graph|saved_model)"),
    Damage("savedmodel", "git lfs pointer", "variables.data-* is a Git LFS pointer", lfs_pointer(f"{SM}/variables/variables.data-00000-of-00001"),
           r"Git LFS pointer.*git lfs pull"),
    # pb: a frozen GraphDef
    Damage("pb", "truncated", "model.pb cut to half", truncate("model.pb"),
           r"(truncat|corrupt|not a binary graphdef|not in the file|versions)"),
    Damage("pb", "garbage", "model.pb replaced by random bytes", garbage("model.pb"),
           r"(not a binary graphdef|corrupt)"),
    Damage("pb", "empty", "model.pb empty", empty("model.pb"), r"empty"),
    Damage("pb", "missing part", "model.pb deleted", delete("model.pb"),
           r"(no such file|not found)"),
    Damage("pb", "other format", "model.pb is a .keras zip",
           replace_with("model.pb", "keras", "model.keras"), r"(not a binary graphdef|corrupt)"),
    Damage("pb", "other format", "model.pb is a SavedModel's saved_model.pb",
           replace_with("model.pb", "savedmodel", f"{SM}/saved_model.pb"),
           r"(not graphdef fields|saved_model|not a binary graphdef)"),
    Damage("pb", "git lfs pointer", "model.pb is a Git LFS pointer", lfs_pointer("model.pb"),
           r"Git LFS pointer.*git lfs pull"),
]
