"""Other interpreters as loaders: ini ``persist_runtimes``, one ``LABEL = /path/to/python`` a line.

A runtime is the subprocess loader (:func:`loaders.run_in_subprocess`) under another Python: an
older TensorFlow, the serving image's interpreter. Its items are ``[<format>-LABEL]`` for every
format the subprocess loader applies to, selected like any loader
(``--persist-loaders=inprocess,tf215`` or ``all``). Today's artifact is restored and run there;
its outputs come back and are compared here.

How the child gets the plugin: the runtime needs Python >= 3.10, numpy and TensorFlow, neither
pytest nor this plugin. The loader puts a scratch directory holding only a link to this
plugin's package first on the child's sys.path (the runner, started with ``python -I``, would
ignore PYTHONPATH): never this process's site-packages, whose TensorFlow would shadow the
runtime's own. The modules the child imports need only the standard library, numpy and
TensorFlow (tests/test_runtimes.py runs one with pytest made unimportable).
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
LABEL_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.]*\Z")
INI = "ini persist_runtimes"


@dataclass(frozen=True)
class Runtime:
    """The loader `label`: restores in the interpreter `python` (given in `source`)."""

    label: str
    python: str
    source: str = INI

    def __str__(self) -> str:
        return f"runtime {self.label} ({self.python})"

    def problem(self) -> str | None:
        """Why `python` cannot be started (from `source`), or None when it can be tried."""
        path = Path(self.python)
        why = ("no such file" if not path.exists() else "not a file" if not path.is_file()
               else "not executable" if not os.access(path, os.X_OK) else None)
        if why is None:
            return None
        return (f"{self}: {why} ({self.source}); a runtime is a Python interpreter with "
                f"TensorFlow and numpy, e.g. python -m pytest_modelpersist runtime create "
                f"{self.label} --tensorflow 2.15.1")


def parse_runtimes(lines: Iterable[str], *, root: Path, source: str,
                   reserved: Iterable[str] = ()) -> dict[str, Runtime]:
    """``LABEL = /path/to/python`` lines -> {label: Runtime}; relative paths are from `root`.

    ValueError names `source` and the line: no ``=``, a label that is not a name (letters,
    digits, ``_`` and ``.``; a letter first), one of `reserved` (the built-in loaders), or
    given twice.
    """
    found: dict[str, Runtime] = {}
    reserved = set(reserved)
    for line in lines:
        if not line.strip():
            continue
        label, eq, python = (part.strip() for part in line.partition("="))
        if not eq or not python:
            raise ValueError(f"{source}: cannot read {line!r}; write one 'LABEL = "
                             "/path/to/python' per line")
        if not LABEL_PATTERN.match(label) or label in reserved:
            why = "is a built-in loader's name" if label in reserved else (
                "must be letters, digits, '_' or '.', starting with a letter")
            raise ValueError(f"{source}: runtime label {label!r} {why}")
        if label in found:
            raise ValueError(f"{source}: runtime {label!r} is given twice")
        found[label] = Runtime(label, str(Path(root, os.path.expanduser(python))), source)
    return found


@functools.cache
def session_plugin_root() -> Path:
    """A plugin_root for this process's warm runtime interpreters, removed at exit."""
    scratch = Path(tempfile.mkdtemp(prefix="modelpersist-plugin-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return plugin_root(scratch)


def plugin_root(scratch: Path) -> Path:
    """A new directory under `scratch` holding only this plugin's package (a link to it, or a
    copy where links cannot be made): what a runtime's child puts first on sys.path."""
    root = scratch / "plugin"
    root.mkdir()
    try:
        (root / PACKAGE.name).symlink_to(PACKAGE, target_is_directory=True)
    except OSError:  # no symbolic links here (Windows without the privilege)
        shutil.copytree(PACKAGE, root / PACKAGE.name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return root
