"""Restore a saved artifact and run it in a fresh interpreter: ``python subprocess_runner.py req``.

Started with ``python -I`` from a scratch directory by `loaders.run_in_subprocess` (or forked
from a warm interpreter that ran only `preload`: warm_server.py), so the test's
own code (its conftest, its model package on the pytest `pythonpath`) is not importable here:
a custom layer that only loaded because its class happened to be imported fails here, as it
would in a serving process. Request (JSON): artifact_dir, format_class ("module:qualname"),
inputs_npz, outputs_npz, options, sys_path, imports, and for a runtime (another interpreter,
loaders.runtimes) plugin_root, a directory holding only this plugin's package, and
runtime_json, where this interpreter's versions go. Exit 0 with the outputs written, 3 with
one line on stderr, or 4 (RUNTIME_UNFIT) when this interpreter cannot run the plugin at all.

This file and what it imports need the standard library, numpy and TensorFlow only: an older
runtime need not have pytest (nor this plugin) installed.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from typing import Any

RUNTIME_UNFIT = 4
MIN_PYTHON = (3, 10)  # pyproject's requires-python


def preload() -> None:
    """Import what every request needs (TensorFlow, quietly, and the plugin's runner modules),
    nothing of the test's code and no TensorFlow op: a warm interpreter (warm_server.py) does
    this once and forks a child per request."""
    from pytest_modelpersist import formats, nest  # noqa: F401
    from pytest_modelpersist._tf import import_tensorflow
    from pytest_modelpersist.restore import options  # noqa: F401

    import_tensorflow()
    for name in formats.BUILTIN:  # the plugin's own format modules, not a test's code
        if name not in formats.OPT_IN:
            importlib.import_module(f"pytest_modelpersist.formats.{formats.BUILTIN[name][0]}")


def main(request_path: str) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with open(request_path) as fh:
        request = json.load(fh)
    if request.get("plugin_root"):  # a runtime: the plugin comes from the caller's package
        sys.path.insert(0, request["plugin_root"])
    tf = _import_tensorflow(request)
    if tf is None:
        return RUNTIME_UNFIT
    import numpy as np

    from pytest_modelpersist.formats.base import Artifact
    from pytest_modelpersist.restore.options import parse_restore_options

    # What the serving side has on purpose (ini persist_subprocess_path/_imports), e.g. the
    # package that registers custom layers; never the test's own modules.
    sys.path[:0] = request.get("sys_path", [])
    for module in request.get("imports", []):
        importlib.import_module(module)
    module_name, _, qualname = request["format_class"].partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    fmt = found()
    artifact = Artifact.from_directory(request["artifact_dir"])
    from pytest_modelpersist import byte_strings
    from pytest_modelpersist.nest import flat_arrays, pack, structure_of, to_numpy

    with np.load(request["inputs_npz"], allow_pickle=False) as npz:
        members = byte_strings.unpack(npz)
    leaves = [members[f"input_{i}"] for i in range(len(members))]
    structure = request.get("input_structure")
    inputs = pack(structure, leaves) if structure else leaves
    try:
        options = parse_restore_options(fmt.name, fmt.restore_options,
                                        request.get("options", {}))
        restored = fmt.restore(artifact, options)
        result = to_numpy(restored.outputs(inputs))
        _, outputs = flat_arrays(result)
    except Exception as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        print(f"{type(exc).__name__}: {' / '.join(lines[:8])}", file=sys.stderr)
        from pytest_modelpersist.loaders.runtime_ops import unregistered_ops_line

        # After the error line: the parent reads it as the cause when present.
        missing = unregistered_ops_line(artifact.directory, tf.__version__)
        if missing:
            print(missing, file=sys.stderr)
        if os.environ.get("MODELPERSIST_DEBUG"):
            traceback.print_exc()
        return 3
    np.savez(request["outputs_npz"],
             **byte_strings.pack({f"output_{i}": o for i, o in enumerate(outputs)}))
    if request.get("outputs_json"):
        with open(request["outputs_json"], "w") as fh:
            json.dump(structure_of(result), fh)
    return 0


def _import_tensorflow(request: dict[str, Any]) -> Any:
    """TensorFlow, imported quietly, with this interpreter's versions written for the caller;
    None (the cause on stderr) when this interpreter cannot run the plugin."""
    if sys.version_info < MIN_PYTHON:
        print(f"RuntimeUnfit: Python {sys.version.split()[0]} is older than the plugin's minimum "
              f"{'.'.join(map(str, MIN_PYTHON))}", file=sys.stderr)
        return None
    try:
        import numpy

        preload()
        tf = sys.modules["tensorflow"]
    except ImportError as exc:  # TensorFlowMissingError is one
        print(f"RuntimeUnfit: {type(exc).__name__}: {str(exc).splitlines()[0]}",
              file=sys.stderr)
        return None
    if request.get("runtime_json"):
        versions = {"tensorflow": tf.__version__, "numpy": numpy.__version__,
                    "python": sys.version.split()[0]}
        with open(request["runtime_json"], "w") as fh:
            json.dump(versions, fh)
    return tf


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
