"""Run saved models through TensorFlow's C API in a subprocess.

The subprocess (``capi_runner.py``) never imports the ``tensorflow`` Python
package: it loads the wheel's shared libraries with ctypes, as C#, Go, Java
and Rust programs do. This module runs in the parent process, which may have
tensorflow imported; ``import tensorflow`` is kept inside functions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import byte_strings
from . import warm
from .process import LoaderError, run_child, tail

__all__ = [
    "CapiLoaderError",
    "RUNNER",
    "tf_lib_dir",
    "run_capi",
    "savedmodel_signature",
]

RUNNER = pathlib.Path(__file__).with_name("capi_runner.py")
_LIBS = ("libtensorflow_framework.so.2", "libtensorflow_cc.so.2")


class CapiLoaderError(LoaderError):
    """Loading or running a model through the TensorFlow C API failed."""


def tf_lib_dir() -> pathlib.Path:
    """The installed ``tensorflow`` package directory (holding the C API
    shared libraries), found without importing tensorflow."""
    try:
        spec = importlib.util.find_spec("tensorflow")
    except (ImportError, ValueError) as exc:
        raise CapiLoaderError(f"cannot locate the tensorflow package: {exc}") from exc
    if spec is None or not spec.submodule_search_locations:
        raise CapiLoaderError(
            "the tensorflow package is not installed in this environment "
            f"({sys.executable}); the C API loader needs its shared libraries"
        )
    tried = []
    for loc in spec.submodule_search_locations:
        d = pathlib.Path(loc)
        if all((d / so).is_file() for so in _LIBS):
            return d
        tried.append(str(d))
    raise CapiLoaderError(
        f"TensorFlow C API libraries {', '.join(_LIBS)} not found in {', '.join(tried)}"
    )


def run_capi(
    kind: str,
    path,
    feeds: Mapping[str, np.ndarray],
    fetches: Sequence[str],
    *,
    workdir,
    timeout: float = 120.0,
    tags: Sequence[str] = ("serve",),
    session_config: bytes | None = None,
) -> list[np.ndarray]:
    """Run ``fetches`` of a frozen graph (``kind="pb"``) or a SavedModel
    directory (``kind="savedmodel"``) through the TensorFlow C API in a
    subprocess that does not import the tensorflow Python package.

    ``feeds`` maps tensor names (``"x:0"``, ``"serving_default_x:0"``) to
    arrays; ``fetches`` are tensor names. Returns the fetched arrays in order.
    ``session_config`` is an optional serialized ``tf.compat.v1.ConfigProto``.
    Raises :class:`CapiLoaderError` on any failure.
    """
    if kind not in ("pb", "savedmodel"):
        raise ValueError(f"kind must be 'pb' or 'savedmodel', not {kind!r}")
    fetches = list(fetches)
    if not fetches:
        raise ValueError("fetches must name at least one tensor")
    path = pathlib.Path(path).resolve()
    what = f"C API {kind} loader for {path}"
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    request_json, outputs_npz = _write_request(workdir, kind, path, feeds, fetches, tags,
                                               session_config)
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    cmd = [sys.executable, str(RUNNER), str(request_json)]
    proc = warm.run(warm.server_command(sys.executable, "capi", RUNNER, str(tf_lib_dir())),
                    request_json, workdir, env=env, what=what, timeout=timeout,
                    error=CapiLoaderError,
                    cold=lambda: run_child(cmd, what=what, timeout=timeout,
                                           error=CapiLoaderError, env=env, cwd=str(workdir)))
    if proc.returncode != 0:
        raise CapiLoaderError(
            f"{what}: runner exited with code {proc.returncode}\n"
            f"runner stderr:\n{tail(proc.stderr)}"
        )
    if not outputs_npz.is_file():
        raise CapiLoaderError(
            f"{what}: runner exited 0 but wrote no outputs file {outputs_npz}\n"
            f"runner stderr:\n{tail(proc.stderr)}"
        )
    with np.load(outputs_npz, allow_pickle=False) as z:
        members = byte_strings.unpack(z)
        try:
            return [members[f"output_{i}"] for i in range(len(fetches))]
        except KeyError as exc:
            raise CapiLoaderError(f"{what}: outputs file {outputs_npz} lacks {exc}") from None


def _write_request(workdir: pathlib.Path, kind: str, path: pathlib.Path,
                   feeds: Mapping[str, np.ndarray], fetches: list[str], tags: Sequence[str],
                   session_config: bytes | None) -> tuple[pathlib.Path, pathlib.Path]:
    """Write the runner's inputs npz and request JSON; (request path, outputs npz path)."""
    inputs_npz = workdir / "capi_inputs.npz"
    outputs_npz = workdir / "capi_outputs.npz"
    request_json = workdir / "capi_request.json"
    if outputs_npz.exists():
        outputs_npz.unlink()

    arrays: dict[str, Any] = {f"input_{i}": np.asarray(v) for i, v in enumerate(feeds.values())}
    np.savez(inputs_npz, **byte_strings.pack(arrays))
    request = {
        "kind": kind,
        "path": str(path),
        "tags": list(tags),
        "feeds": {name: f"input_{i}" for i, name in enumerate(feeds)},
        "fetches": fetches,
        "inputs_npz": str(inputs_npz),
        "outputs_npz": str(outputs_npz),
        "lib_dir": str(tf_lib_dir()),
    }
    if session_config:
        request["config_hex"] = bytes(session_config).hex()
    request_json.write_text(json.dumps(request, indent=1), encoding="utf-8")
    return request_json, outputs_npz


def savedmodel_signature(
    path, signature_key: str = "serving_default", *, tags: Sequence[str] = ("serve",)
) -> tuple[dict[str, str], dict[str, str]]:
    """(input key -> tensor name, output key -> tensor name) of a SavedModel
    signature, read from ``saved_model.pb`` (the names the C API feeds and
    fetches, e.g. ``serving_default_x:0`` and ``StatefulPartitionedCall:0``)."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = pathlib.Path(path)
    pb = path / "saved_model.pb"
    if not pb.is_file():
        raise CapiLoaderError(f"no saved_model.pb in {path}")
    sm = saved_model_pb2.SavedModel()
    try:
        sm.ParseFromString(pb.read_bytes())
    except Exception as exc:  # protobuf DecodeError
        raise CapiLoaderError(f"cannot parse {pb}: {exc}") from exc
    want = set(tags)
    metas = [m for m in sm.meta_graphs if set(m.meta_info_def.tags) == want]
    if not metas:
        found = [sorted(m.meta_info_def.tags) for m in sm.meta_graphs]
        raise CapiLoaderError(f"{path}: no meta graph with tags {sorted(want)} (has {found})")
    sigs = metas[0].signature_def
    if signature_key not in sigs:
        raise CapiLoaderError(
            f"{path}: no signature {signature_key!r} (has {sorted(sigs)})"
        )
    sig = sigs[signature_key]
    return (
        {k: v.name for k, v in sig.inputs.items()},
        {k: v.name for k, v in sig.outputs.items()},
    )
