"""How a saved artifact is brought back: in this process, a fresh interpreter, or the C API.

`inprocess` is the format's own restore. `subprocess` restores and runs the artifact in a fresh
Python interpreter where the test's code is not importable. `capi` loads a frozen `.pb` or a
SavedModel through TensorFlow's C API in a process that never imports the `tensorflow` package.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:  # loaded when a loader runs, not when pytest starts
    np = lazy_module("numpy")

INPROCESS, SUBPROCESS, CAPI = "inprocess", "subprocess", "capi"
LOADERS = (INPROCESS, SUBPROCESS, CAPI)
DEFAULT_TIMEOUT = 300.0
RUNNER = Path(__file__).with_name("subprocess_runner.py")


class LoaderError(RuntimeError):
    """A loader process failed, crashed or timed out."""


def loaders_of(fmt: Any) -> tuple[str, ...]:
    """The loaders a format supports (a format may declare `loaders`; default: in-process)."""
    return tuple(getattr(fmt, "loaders", (INPROCESS,)))


def _signal_name(rc: int) -> str:
    import signal

    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def _tail(text: str, n: int = 1500) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() and "I0000" not in ln
             and "absl::InitializeLog" not in ln]
    return "\n".join(lines)[-n:]


def run_in_subprocess(fmt: Any, artifact: Any, inputs: Sequence[np.ndarray], *,
                      timeout: float = DEFAULT_TIMEOUT, options: dict[str, Any] | None = None,
                      sys_path: Sequence[str] = (), imports: Sequence[str] = ()
                      ) -> list[np.ndarray]:
    """Restore and run `artifact` with `fmt` in a fresh `python -I` process; its outputs.

    LoaderError names the format, the artifact and the cause (exit status, crash signal,
    timeout, the child's last error line).
    """
    import json
    import subprocess
    import tempfile

    cls = type(fmt)
    with tempfile.TemporaryDirectory(prefix="modelpersist-subprocess-") as scratch:
        work = Path(scratch)
        arrays: dict[str, Any] = {f"input_{i}": np.asarray(x) for i, x in enumerate(inputs)}
        np.savez(work / "inputs.npz", **arrays)
        request = {
            "artifact_dir": str(artifact.directory),
            "format_class": f"{cls.__module__}:{cls.__qualname__}",
            "inputs_npz": str(work / "inputs.npz"),
            "outputs_npz": str(work / "outputs.npz"),
            "options": dict(options or {}),
            "sys_path": [str(p) for p in sys_path],
            "imports": list(imports),
        }
        (work / "request.json").write_text(json.dumps(request))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        what = f"[{artifact.format}] subprocess loader for {artifact.path}"
        try:
            proc = subprocess.run(
                [sys.executable, "-I", str(RUNNER), str(work / "request.json")],
                cwd=work, env=env, capture_output=True, text=True, timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise LoaderError(f"{what}: timed out after {timeout:g} s (the process was killed);"
                              " raise it with --persist-timeout") from None
        if proc.returncode < 0:
            raise LoaderError(f"{what}: the process crashed with {_signal_name(proc.returncode)}"
                              f"\n{_tail(proc.stderr)}")
        if proc.returncode != 0:
            raise LoaderError(f"{what}: restore failed in a fresh interpreter (the test's code "
                              f"is not importable there): {_tail(proc.stderr)}")
        with np.load(work / "outputs.npz", allow_pickle=False) as npz:
            return [npz[f"output_{i}"] for i in range(len(npz.files))]


def run_with_capi(artifact: Any, inputs: Sequence[np.ndarray], *,
                  timeout: float = DEFAULT_TIMEOUT) -> list[np.ndarray]:
    """Run a `pb` or `savedmodel` artifact through TensorFlow's C API; its outputs."""
    import tempfile

    from ..models import natural_key
    from .capi import CapiLoaderError, run_capi, savedmodel_signature

    if artifact.format == "pb":
        feeds_names, fetches = artifact.meta["inputs"], artifact.meta["outputs"]
        kind, path = "pb", artifact.path
    elif artifact.format == "savedmodel":
        sig_in, sig_out = savedmodel_signature(artifact.path)
        feeds_names = [sig_in[k] for k in sorted(sig_in, key=natural_key)]
        fetches = [sig_out[k] for k in sorted(sig_out, key=natural_key)]
        kind, path = "savedmodel", artifact.path
    else:
        raise LoaderError(f"[{artifact.format}] the C API loader reads pb and savedmodel only")
    if len(feeds_names) != len(inputs):
        raise LoaderError(f"[{artifact.format}] {path} takes {len(feeds_names)} inputs "
                          f"({feeds_names}), got {len(inputs)}")
    with tempfile.TemporaryDirectory(prefix="modelpersist-capi-") as scratch:
        try:
            return run_capi(kind, path, dict(zip(feeds_names, inputs, strict=True)), fetches,
                            workdir=scratch, timeout=timeout)
        except CapiLoaderError as exc:
            raise LoaderError(f"[{artifact.format}] {exc}") from None
