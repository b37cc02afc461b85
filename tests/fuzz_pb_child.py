"""Child process of test_fuzz.py: check mutated frozen graphs through the `pb` format.

Run as ``python fuzz_pb_child.py WORKDIR N``. Saves a real Keras model as a frozen graph, then
hypothesis mutates its bytes N times (bit flips, byte sets, inserted and deleted runs, cuts;
edits of the parsed GraphDef: dtypes, shapes, tensor contents, weight bits, op types, inputs).
Each mutant goes through ``Persist.check`` (saved as those bytes, restored, run, compared with
the original model), the way a test meets a damaged `.pb`. Allowed outcomes: ``pytest.fail``
naming ``[pb]``, the file and a cause (restore failed, run failed, outputs differ), or a pass
when the mutant computes exactly the original outputs (an unused attribute edited, say).
Anything else (another exception) fails the hypothesis run; a crash or hang is seen by the
parent. Each example is written to WORKDIR/last-example.bin before it is tried, so a crash
leaves its input behind. Prints one JSON line of counts at the end.
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
from pytest_modelpersist.formats.frozen import FrozenGraphFormat  # noqa: E402
from pytest_modelpersist.persist import CheckOptions, Persist  # noqa: E402

import model_zoo  # noqa: E402


class MutantGraph(FrozenGraphFormat):
    """The `pb` format whose save writes the bytes under test instead of freezing the model."""

    data = b""
    meta: dict = {}

    def save(self, model: object, directory: Path, *, inputs: object) -> Artifact:
        (directory / "model.pb").write_bytes(self.data)
        return Artifact(self.name, directory / "model.pb", directory, "keras", dict(self.meta))


def main(workdir: Path, examples: int) -> int:
    tf = model_zoo.import_tensorflow()
    from tensorflow.core.framework.graph_pb2 import GraphDef

    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    model = model_zoo.randomize(model_zoo.functional())
    fmt = MutantGraph()
    persist = Persist(fmt, tmp_path=workdir, options=CheckOptions())
    artifact = Persist(FrozenGraphFormat(), tmp_path=workdir / "good",
                       options=CheckOptions()).save(model, inputs=x)
    good = artifact.path.read_bytes()
    fmt.meta = artifact.meta
    good_def = GraphDef()
    good_def.ParseFromString(good)
    ops = sorted({n.op for n in good_def.node}) + ["VarHandleOp", "Fill", "Reshape", "NoSuchOp"]
    seen: Counter[str] = Counter()
    del tf

    @st.composite
    def byte_mutant(draw: st.DrawFn) -> bytes:
        b = bytearray(good)
        for _ in range(draw(st.integers(1, 8))):
            op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
            i = draw(st.integers(0, max(len(b) - 1, 0)))
            if op == "flip" and b:
                b[i] ^= 1 << draw(st.integers(0, 7))
            elif op == "set" and b:
                b[i] = draw(st.integers(0, 255))
            elif op == "insert":
                b[i:i] = draw(st.binary(min_size=1, max_size=8))
            elif op == "delete":
                del b[i:i + draw(st.integers(1, 8))]
            elif op == "truncate":
                del b[i:]
        return bytes(b)

    @st.composite
    def proto_mutant(draw: st.DrawFn) -> bytes:
        g = GraphDef()
        g.CopyFrom(good_def)
        for _ in range(draw(st.integers(1, 3))):
            node = g.node[draw(st.integers(0, len(g.node) - 1))]
            what = draw(st.sampled_from(["dtype", "dim", "content", "op", "input", "T",
                                         "weight", "weight"]))
            value = node.attr["value"].tensor if "value" in node.attr else None
            if what == "dtype" and "dtype" in node.attr:
                node.attr["dtype"].type = draw(st.sampled_from([0, 1, 3, 7, 9, 20, 21, 23, 999]))
            elif what == "dim" and value is not None and value.tensor_shape.dim:
                dims = value.tensor_shape.dim
                dims[draw(st.integers(0, len(dims) - 1))].size = draw(
                    st.sampled_from([-5, -1, 0, 1, 3, 2**31, 2**40, 2**62]))
            elif what == "content" and value is not None:
                value.tensor_content = value.tensor_content[
                    : draw(st.integers(0, len(value.tensor_content)))]
            elif what == "weight" and value is not None and value.tensor_content:
                content = bytearray(value.tensor_content)  # a weight changed: outputs differ
                content[draw(st.integers(0, len(content) - 1))] ^= 1 << draw(st.integers(4, 7))
                value.tensor_content = bytes(content)
            elif what == "op":
                node.op = draw(st.sampled_from(ops))
            elif what == "input" and node.input:
                node.input[draw(st.integers(0, len(node.input) - 1))] = (
                    g.node[draw(st.integers(0, len(g.node) - 1))].name
                    + draw(st.sampled_from(["", ":1", ":7", ":-1"])))
            elif what == "T" and "T" in node.attr:
                node.attr["T"].type = draw(st.sampled_from([0, 1, 3, 7, 20, 21, 999]))
        return g.SerializeToString()

    @settings(max_examples=examples, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(data=byte_mutant() | proto_mutant())
    def check_mutant(data: bytes) -> None:
        (workdir / "last-example.bin").write_bytes(data)
        fmt.data = data
        try:
            result = persist.check(model, x)
        except pytest.fail.Exception as exc:
            message = str(exc)
            assert message.startswith("[pb] ") and str(workdir) in message, message
            if " restore " in message and " failed: " in message:
                seen["refused"] += 1
            elif " run the restored model " in message and " failed: " in message:
                seen["failed when run"] += 1
            else:
                assert "restored outputs differ from the original model's" in message, message
                seen["outputs differ"] += 1
            return
        # The mutant computes the same outputs (an unused attribute, say): a correct pass.
        assert all(isinstance(o, np.ndarray) for o in result.actual[0])
        seen["same outputs"] += 1

    try:
        run_property(check_mutant, seen)
    finally:
        shutil.copyfile(workdir / "last-example.bin", workdir / "last-example.bin.done")
    print(json.dumps({"examples": sum(seen.values()), **{k: seen.get(k, 0) for k in (
        "refused", "failed when run", "outputs differ", "same outputs", "other")}}))
    return 0 if not seen["other"] else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2])))
