"""``python -m pytest_modelpersist runtime create LABEL``: a virtualenv with a chosen TensorFlow
for ``persist_runtimes``, and the ini line that names it.

The venv gets only what a runtime needs (loaders.runtimes): TensorFlow and numpy, not pytest
and not this plugin. A venv already there is reused when its TensorFlow is the one asked for.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .runtimes import LABEL_PATTERN

#: TensorFlow before 2.16 was built against numpy 1.x; pip may otherwise pick numpy 2.
_NUMPY_1_BELOW = (2, 16)
_PROBE = "import numpy, tensorflow as tf; print(tf.__version__)"


_PINNED_TF = re.compile(r"(?:tensorflow|tensorflow-cpu)==(\d+)\.(\d+)((?:\.\d+)*)\Z", re.I)


def requirements_for(tensorflow: str | None, extra: Sequence[str]) -> tuple[list[str], str | None]:
    """(pip requirements, the pinned TensorFlow version or None): ``tensorflow-cpu==VERSION``
    for `tensorflow`, then `extra`, plus ``numpy<2`` for a pinned version below 2.16.
    ValueError when nothing names a TensorFlow or the version cannot be read."""
    reqs = list(extra)
    if tensorflow:
        if not re.match(r"\d+\.\d+(\.\d+)*\Z", tensorflow):
            raise ValueError(f"--tensorflow {tensorflow!r}: expected a version like 2.15.1")
        reqs.insert(0, f"tensorflow-cpu=={tensorflow}")
    if not any(r.lower().startswith(("tensorflow", "tf-nightly")) for r in reqs):
        raise ValueError("name a TensorFlow: --tensorflow 2.15.1, or a requirement such as "
                         "tensorflow-cpu==2.15.1")
    pinned = next((m for r in reqs if (m := _PINNED_TF.match(r.replace(" ", "")))), None)
    if pinned is None:
        return reqs, None
    if (int(pinned.group(1)), int(pinned.group(2))) < _NUMPY_1_BELOW and not any(
            r.lower().startswith("numpy") for r in reqs):
        reqs.append("numpy<2")
    return reqs, ".".join(pinned.group(i) for i in (1, 2)) + pinned.group(3)


def venv_python(directory: Path) -> Path:
    """The interpreter of the venv at `directory`."""
    return directory / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def installed_tensorflow(python: Path) -> str | None:
    """The TensorFlow version `python` imports, or None (no such interpreter, or no TF)."""
    if not python.exists():
        return None
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True,
                          env=env, check=False)
    lines = proc.stdout.split()
    return lines[-1] if proc.returncode == 0 and lines else None


def create_runtime(label: str, requirements: Sequence[str], *, tensorflow: str | None,
                   directory: Path | None, base_python: str, dry_run: bool = False,
                   out: TextIO = sys.stdout) -> int:
    """Make (or reuse) the runtime venv and print its ini line; the exit status.

    Each step is printed before it runs; with `dry_run` only printed.
    """
    if not LABEL_PATTERN.match(label):
        print(f"runtime label {label!r} must be letters, digits, '_' or '.', starting with a "
              "letter", file=sys.stderr)
        return 2
    try:
        reqs, wanted = requirements_for(tensorflow, requirements)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    directory = directory or Path(".persist-runtimes", label)
    python = venv_python(directory)
    have = installed_tensorflow(python)
    steps: list[list[str]] = []
    if not python.exists():
        steps.append([base_python, "-m", "venv", str(directory)])
    if have is None or have != (wanted or have):
        steps.append([str(python), "-m", "pip", "install", "--quiet", *reqs])
    else:
        print(f"reusing {directory}: TensorFlow {have}", file=out)
    for step in steps:
        print("$ " + shlex.join(step), file=out, flush=True)
        if not dry_run and subprocess.run(step, check=False).returncode != 0:
            print(f"runtime {label}: the step above failed; nothing else was done",
                  file=sys.stderr)
            return 1
    if not dry_run:
        if steps:
            have = installed_tensorflow(python)
        if have is None:
            print(f"runtime {label}: {python} does not import tensorflow and numpy",
                  file=sys.stderr)
            return 1
        print(f"runtime {label}: {python} runs TensorFlow {have}", file=out)
    shown = python if python.is_absolute() else Path(os.path.normpath(python))
    print(f"\nAdd to your pytest ini (paths are relative to rootdir):\n\n"
          f"persist_runtimes =\n    {label} = {shown.as_posix()}\n\n"
          f"and select it: pytest --persist-loaders=inprocess,{label}", file=out)
    return 0
