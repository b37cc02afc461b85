"""Formats and models the runtime tests hand to a loader child (tests/ on the child's sys.path
through `persist_subprocess_path`): they import the standard library, numpy, TensorFlow and the
plugin only, never pytest, as a runtime need not have it."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from pytest_modelpersist.formats.frozen import FrozenGraphFormat

# A 1x1 lossy WebP image (the common browser feature-detection sample).
WEBP = base64.b64decode("UklGRiIAAABXRUJQVlA4IBYAAAAwAQCdASoBAAEADsD+JaQAA3AAAAAA")


class DoubledWeightsPb(FrozenGraphFormat):
    """The pb format, except that its save doubles the frozen graph's first weight matrix: a
    broken save that any faithful restore, in any TensorFlow, brings back wrong."""

    def save(self, model: Any, directory: Path, *, inputs: Any) -> Any:
        import tensorflow as tf

        artifact = super().save(model, directory, inputs=inputs)
        graph_def = tf.compat.v1.GraphDef.FromString(artifact.path.read_bytes())
        const = next(n for n in graph_def.node
                     if n.op == "Const" and len(n.attr["value"].tensor.tensor_shape.dim) == 2)
        doubled = tf.make_ndarray(const.attr["value"].tensor) * 2
        const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(doubled))
        artifact.path.write_bytes(graph_def.SerializeToString())
        return artifact


class ParentNamingPb(FrozenGraphFormat):
    """The pb format, whose restore writes ``<pid> <parent pid>`` to ``restored-by`` beside the
    artifact: which process ran it, and which process started that one."""

    def restore(self, artifact: Any, options: Any) -> Any:
        import os

        (artifact.directory / "restored-by").write_text(f"{os.getpid()} {os.getppid()}")
        return super().restore(artifact, options)


def webp_thumbnails() -> Any:
    """A serving model that takes a base64 (web-safe) WebP image, as a JSON request carries
    one, and returns its mean colour, scaled: ``tf.io.decode_webp`` is TensorFlow's
    ``DecodeWebP`` op, which TF 2.21 registers and TF 2.15 does not."""
    import tensorflow as tf

    class Thumbnails(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = tf.Variable([[1.0 / 255, 2.0 / 255, 3.0 / 255]])

        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def __call__(self, data: Any) -> Any:
            frames = tf.io.decode_webp(tf.io.decode_base64(data))  # frames, h, w, RGBA
            rgb = tf.cast(frames[..., :3], tf.float32)
            return tf.reduce_mean(rgb, axis=[0, 1, 2])[None, :] * self.scale

    return Thumbnails()
