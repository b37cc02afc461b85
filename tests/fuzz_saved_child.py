"""Child process of test_fuzz.py: mutated SavedModel ``saved_model.pb`` and ckpt ``.meta`` protos.

Run as ``python fuzz_saved_child.py FORMAT WORKDIR N`` (FORMAT: savedmodel or ckpt). Saves a
real model in FORMAT, then hypothesis edits the parsed protobuf N times: node op types
(including WriteFile, ReadFile, PyFunc and unknown ops), inputs, attributes, library function
bodies, signatures, the saver_def's tensor and op names, init-op collections and asset file
names, plus a few byte flips. Each mutant goes through ``Persist.check`` like
fuzz_pb_child.py: allowed outcomes are a ``pytest.fail`` naming the format and the file, or a
pass with the original outputs. A file written under WORKDIR/outside by a mutant fails the run.
Prints one JSON line of counts.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402  (numpy before TensorFlow's libraries, see FACTS.md)
import pytest  # noqa: E402
from fuzz_common import run_property  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pytest_modelpersist.formats.base import Artifact  # noqa: E402
from pytest_modelpersist.formats.tf1 import CkptFormat  # noqa: E402
from pytest_modelpersist.formats.tf2 import SavedModelFormat  # noqa: E402
from pytest_modelpersist.persist import CheckOptions, Persist  # noqa: E402

import model_zoo  # noqa: E402

EXTRA_OPS = ["WriteFile", "ReadFile", "PyFunc", "MatchingFiles", "NoSuchOp", "Identity",
             "NoOp", "RestoreV2", "QueueDequeueV2"]


def mutant_format(base: type) -> type:
    class Mutant(base):  # type: ignore[misc, valid-type]
        """`base` whose save copies a good artifact and puts the bytes under test in it."""

        good: Artifact
        proto_name = ""
        data = b""

        def save(self, model: object, directory: Path, *, inputs: object) -> Artifact:
            shutil.copytree(self.good.directory, directory, dirs_exist_ok=True)
            (directory / self.proto_name).write_bytes(self.data)
            relative = self.good.path.relative_to(self.good.directory)
            return Artifact(self.name, directory / relative, directory, self.good.model_kind,
                            dict(self.good.meta))

    return Mutant


def graph_defs(message: object, fmt: str) -> list[object]:
    if fmt == "savedmodel":
        return [m.graph_def for m in message.meta_graphs]  # type: ignore[attr-defined]
    return [message.graph_def]  # type: ignore[attr-defined]


def meta_graphs(message: object, fmt: str) -> list[object]:
    return list(message.meta_graphs) if fmt == "savedmodel" else [message]  # type: ignore


def main(fmt_name: str, workdir: Path, examples: int) -> int:
    model_zoo.import_tensorflow()
    from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    model = model_zoo.randomize(model_zoo.functional())
    base = SavedModelFormat if fmt_name == "savedmodel" else CkptFormat
    good = Persist(base(), tmp_path=workdir / "good", options=CheckOptions()).save(model, inputs=x)
    fmt = mutant_format(base)()
    fmt.good = good
    if fmt_name == "savedmodel":
        fmt.proto_name = str((good.path / "saved_model.pb").relative_to(good.directory))
        good_msg = saved_model_pb2.SavedModel()
    else:
        fmt.proto_name = next(good.directory.glob("*.meta")).name
        good_msg = meta_graph_pb2.MetaGraphDef()
    good_bytes = (good.directory / fmt.proto_name).read_bytes()
    good_msg.ParseFromString(good_bytes)
    persist = Persist(fmt, tmp_path=workdir / "runs", options=CheckOptions(timeout=20))
    outside = workdir / "outside"
    outside.mkdir()
    seen: Counter[str] = Counter()

    @st.composite
    def mutant(draw: st.DrawFn) -> bytes:
        msg = type(good_msg)()
        msg.CopyFrom(good_msg)
        for _ in range(draw(st.integers(1, 3))):
            graph = draw(st.sampled_from(graph_defs(msg, fmt_name)))
            meta = draw(st.sampled_from(meta_graphs(msg, fmt_name)))
            scopes = [list(graph.node)] + [list(f.node_def) for f in graph.library.function]
            nodes = draw(st.sampled_from([s for s in scopes if s]))
            node = nodes[draw(st.integers(0, len(nodes) - 1))]
            names = [n.name for n in graph.node]
            what = draw(st.sampled_from(["op", "op", "input", "attr", "signature", "saver",
                                         "init", "asset", "filename", "bytes"]))
            if what == "op":
                node.op = draw(st.sampled_from(sorted({n.op for n in nodes}) + EXTRA_OPS))
            elif what == "input" and node.input:
                node.input[draw(st.integers(0, len(node.input) - 1))] = draw(
                    st.sampled_from(names)) + draw(st.sampled_from(["", ":1", ":9"]))
            elif what == "attr" and node.attr:
                key = draw(st.sampled_from(sorted(node.attr)))
                if node.attr[key].HasField("type"):
                    node.attr[key].type = draw(st.sampled_from([0, 1, 3, 7, 20, 21, 999]))
                elif node.attr[key].HasField("s"):
                    node.attr[key].s = draw(st.sampled_from(
                        [b"", b"file:///" + str(outside).encode() + b"/x", b"stderr", b"\xff"]))
            elif what == "signature" and meta.signature_def:
                sig = meta.signature_def[draw(st.sampled_from(sorted(meta.signature_def)))]
                if sig.outputs:
                    key = draw(st.sampled_from(sorted(sig.outputs)))
                    sig.outputs[key].name = draw(st.sampled_from(names)) + ":0"
            elif what == "saver":
                field = draw(st.sampled_from(["restore_op_name", "filename_tensor_name",
                                              "save_tensor_name"]))
                setattr(meta.saver_def, field, draw(st.sampled_from(names)) + (
                    "" if field == "restore_op_name" else ":0"))
            elif what == "init":
                meta.collection_def["saved_model_main_op"].node_list.value[:] = [
                    draw(st.sampled_from(names))]
            elif what == "asset":
                asset = meta.asset_file_def.add()
                asset.filename = draw(st.sampled_from(["../../etc/hostname", "/etc/hostname",
                                                       "vocab.txt"]))
                asset.tensor_info.name = draw(st.sampled_from(names)) + ":0"
            elif what == "filename":
                for n in graph.node:
                    if n.op == "Const" and n.attr["value"].tensor.string_val:
                        n.attr["value"].tensor.string_val[0] = str(outside / "x").encode()
                        break
        data = bytearray(msg.SerializeToString())
        if draw(st.booleans()) and draw(st.booleans()):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)

    @settings(max_examples=examples, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(data=mutant())
    def check_mutant(data: bytes) -> None:
        (workdir / "last-example.bin").write_bytes(data)
        fmt.data = data
        try:
            persist.check(model, x, golden=False)
        except pytest.fail.Exception as exc:
            message = str(exc)
            assert message.startswith(f"[{fmt_name}] ") and str(workdir) in message, message
            seen["refused (screen)" if "persist(unsafe=True)" in message else "failed"] += 1
        else:
            seen["same outputs"] += 1  # check() compared them with the original model's
        assert not any(outside.iterdir()), f"a mutant wrote {list(outside.iterdir())}"

    run_property(check_mutant, seen)
    print(json.dumps({"examples": sum(seen.values()), **{k: seen.get(k, 0) for k in (
        "refused (screen)", "failed", "same outputs", "other")}}))
    return 0 if not seen["other"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])))
