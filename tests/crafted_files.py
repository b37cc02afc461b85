"""Crafted model files for the untrusted-file tests (issue 14): HDF5 files reading other files,
zip bombs, checkpoint indexes claiming huge tensors, Keras configs with enormous sizes.

Each helper edits a real file the plugin saved, with the library a crafter would use (h5py,
zipfile) or, for a checkpoint index (an SSTable of BundleEntryProto), by rewriting the table
with TensorFlow's own entry protos and re-sealed block checksums.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

#: What every crafted kernel reads from outside the artifact.
OUTSIDE_VALUE = 42.0

# ---- HDF5 -------------------------------------------------------------------------------------

H5_FEATURES = ["external_link", "soft_link_out", "external_storage", "virtual_dataset"]


def redirect_dataset(h5: Path | io.BytesIO, name: str, feature: str, outside: Path) -> None:
    """Replace dataset `name` by one whose values come from a file in `outside`, filled with
    OUTSIDE_VALUE: an external link, a soft link to an external link, external raw storage, or
    a virtual dataset mapping another HDF5 file."""
    import h5py

    outside.mkdir(parents=True, exist_ok=True)
    with h5py.File(h5, "r+") as f:
        shape, dtype = f[name].shape, f[name].dtype
        del f[name]
        values = np.full(shape, OUTSIDE_VALUE, dtype)
        other = outside / "other.h5"
        with h5py.File(other, "w") as o:
            o["secret"] = values
        if feature == "external_link":
            f[name] = h5py.ExternalLink(str(other), "/secret")
        elif feature == "soft_link_out":
            f["elsewhere"] = h5py.ExternalLink(str(other), "/secret")
            f[name] = h5py.SoftLink("/elsewhere")
        elif feature == "external_storage":
            raw = outside / "secret.bin"
            values.tofile(raw)
            f.create_dataset(name, shape=shape, dtype=dtype,
                             external=[(str(raw), 0, values.nbytes)])
        elif feature == "virtual_dataset":
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            layout[...] = h5py.VirtualSource(str(other), "secret", shape=shape)
            f.create_virtual_dataset(name, layout)
        else:
            raise ValueError(feature)


def declare_unstored(h5: Path | io.BytesIO, name: str, elements: int = 10**9) -> None:
    """Replace dataset `name` by a float32 one declaring `elements` values, none stored."""
    import h5py

    with h5py.File(h5, "r+") as f:
        del f[name]
        f.create_dataset(name, shape=(elements,), dtype=np.float32)


def edit_keras_member(archive: Path, member: str, edit: Callable[[io.BytesIO], None]) -> None:
    """Rewrite one member of a `.keras` archive through `edit(file object)`."""
    with zipfile.ZipFile(archive) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    data = io.BytesIO(members[member])
    edit(data)
    members[member] = data.getvalue()
    with zipfile.ZipFile(archive, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)


def edit_keras_config(archive: Path, edit: Callable[[dict], None]) -> None:
    """Rewrite a `.keras` archive's config.json through `edit(config)`."""
    def rewrite(data: io.BytesIO) -> None:
        config = json.loads(data.getvalue())
        edit(config)
        data.seek(0)
        data.truncate()
        data.write(json.dumps(config).encode())

    edit_keras_member(archive, "config.json", rewrite)


def layer_configs(config: dict) -> Iterator[dict]:
    """Every serialized layer's config dict (the ``config`` of a ``class_name`` entry)."""
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config.get("config"), dict):
            yield config
        for value in config.values():
            yield from layer_configs(value)
    elif isinstance(config, list):
        for item in config:
            yield from layer_configs(item)


# ---- zip bombs --------------------------------------------------------------------------------


def zip_bomb(archive: Path, member: str, declared: int) -> None:
    """Replace `member` of a zip archive by `declared` zero bytes, deflated (about 1000:1),
    written in 16 MiB chunks so the crafting itself stays small in memory."""
    with zipfile.ZipFile(archive) as z:
        others = {i.filename: z.read(i) for i in z.infolist() if i.filename != member}
    chunk = bytes(16 << 20)
    with zipfile.ZipFile(archive, "w") as z:
        for name, content in others.items():
            z.writestr(name, content)
        info = zipfile.ZipInfo(member)
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as out:
            left = declared
            while left:
                out.write(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))


# ---- checkpoint indexes (LevelDB-format SSTables) ---------------------------------------------


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def _masked_crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    c ^= 0xFFFFFFFF
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _put_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    restarts = struct.unpack("<I", block[-4:])[0]
    end, pos, last = len(block) - 4 - 4 * restarts, 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        own, pos = _varint(block, pos)
        size, pos = _varint(block, pos)
        key = last[:shared] + block[pos:pos + own]
        pos += own
        yield key, block[pos:pos + size]
        pos += size
        last = key


def table_entries(raw: bytes) -> list[tuple[bytes, bytes]]:
    """(key, value) of every entry of an SSTable (the footer's index block, then data)."""
    footer = raw[-48:]
    _, pos = _varint(footer, 0)
    _, pos = _varint(footer, pos)
    offset, pos = _varint(footer, pos)
    size, _ = _varint(footer, pos)
    found = []
    for _, handle in _block_entries(raw[offset:offset + size]):
        data_offset, pos = _varint(handle, 0)
        data_size, _ = _varint(handle, pos)
        found += list(_block_entries(raw[data_offset:data_offset + data_size]))
    return found


def _block(items: list[tuple[bytes, bytes]]) -> bytes:
    body, restarts = bytearray(), []
    for key, value in items:
        restarts.append(len(body))
        body += _put_varint(0) + _put_varint(len(key)) + _put_varint(len(value)) + key + value
    restarts = restarts or [0]
    return bytes(body) + b"".join(struct.pack("<I", r) for r in restarts) + struct.pack(
        "<I", len(restarts))


def write_table(items: list[tuple[bytes, bytes]]) -> bytes:
    """An SSTable holding `items` in one uncompressed data block."""
    out = bytearray()

    def put(block: bytes) -> bytes:
        offset = len(out)
        out.extend(block + b"\x00" + struct.pack("<I", _masked_crc32c(block + b"\x00")))
        return _put_varint(offset) + _put_varint(len(block))

    items = sorted(items)
    data = put(_block(items))
    meta = put(_block([]))
    index = put(_block([(items[-1][0], data)]))
    magic = struct.pack("<Q", 0xDB4775248B80FB57)
    return bytes(out + (meta + index).ljust(40, b"\x00") + magic)


def claim_huge_tensor(prefix: str, elements: int = 10**9) -> str:
    """Rewrite checkpoint `prefix`'s index so its first float variable claims `elements`
    values (with a consistent byte size), its data file unchanged. Returns the key edited."""
    from tensorflow.core.protobuf import tensor_bundle_pb2

    index = Path(f"{prefix}.index")
    entries, edited = [], None
    for key, value in table_entries(index.read_bytes()):
        entry = tensor_bundle_pb2.BundleEntryProto()
        if key and edited is None and key != b"_CHECKPOINTABLE_OBJECT_GRAPH":
            entry.ParseFromString(value)
            if entry.dtype == 1:  # DT_FLOAT
                del entry.shape.dim[:]
                entry.shape.dim.add(size=elements)
                entry.size = 4 * elements
                value, edited = entry.SerializeToString(), key.decode()
        entries.append((key, value))
    assert edited is not None, "no float variable in the index"
    index.write_bytes(write_table(entries))
    return edited


def copy_artifact(directory: Path, to: Path) -> Path:
    """A copy of an artifact directory (to craft without touching the original)."""
    shutil.copytree(directory, to)
    return to
