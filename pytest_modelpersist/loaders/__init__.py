"""How a saved artifact is brought back: in this process, a fresh interpreter, or the C API.

`inprocess` is the format's own restore. `subprocess` restores and runs the artifact in a fresh
Python interpreter where the test's code is not importable. `capi` loads a frozen `.pb` or a
SavedModel through TensorFlow's C API in a process that never imports the `tensorflow` package.
A runtime (ini `persist_runtimes`, :mod:`.runtimes`) is the subprocess loader under another
interpreter, named by its label.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from .._names import ALL, split_names
from . import warm
from .process import LoaderError, run_child
from .runtimes import Runtime

if TYPE_CHECKING:
    import numpy as np
else:  # loaded when a loader runs, not when pytest starts
    np = lazy_module("numpy")

INPROCESS, SUBPROCESS, CAPI = "inprocess", "subprocess", "capi"
LOADERS = (INPROCESS, SUBPROCESS, CAPI)
DEFAULT_TIMEOUT = 300.0
RUNNER = Path(__file__).with_name("subprocess_runner.py")


def loaders_of(fmt: Any) -> tuple[str, ...]:
    """The loaders a format supports (its declared `loaders`)."""
    return tuple(fmt.loaders)


def applies(loader: str, fmt: Any) -> bool:
    """Whether `loader` can restore `fmt`: a built-in loader the format declares, or a runtime
    (any other name) when the subprocess loader applies, as a runtime is that loader."""
    return loader in fmt.loaders or (loader not in LOADERS and SUBPROCESS in fmt.loaders)


def parse_loaders(spec: Any, source: str, *, error: type[Exception],
                  runtimes: Sequence[str] = ()) -> list[str]:
    """'inprocess,capi' / 'all' / a list -> known loader names: LOADERS, then the `runtimes`
    labels, in that order ('all' is every one of them).

    Raises ``error`` naming ``source`` (the option or marker) for unknown names or none.
    """
    known = [*LOADERS, *runtimes]
    names = split_names(spec)
    if ALL in names:
        return known
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise error(f"{source}: unknown loader(s) {', '.join(unknown) or '(none)'}; "
                    f"known loaders: {', '.join(LOADERS)}"
                    + (f"; runtimes: {', '.join(runtimes)}" if runtimes else
                       " (other interpreters: ini persist_runtimes)"))
    return [n for n in known if n in names]


def run_in_subprocess(fmt: Any, artifact: Any, inputs: Any, *,
                      timeout: float = DEFAULT_TIMEOUT, options: dict[str, Any] | None = None,
                      sys_path: Sequence[str] = (), imports: Sequence[str] = (),
                      runtime: Runtime | None = None) -> Any:
    """Restore and run `artifact` with `fmt` in a fresh `python -I` process; its outputs.

    The process is this interpreter, or `runtime`'s (another TensorFlow; it gets this plugin's
    package on its sys.path, see loaders.runtimes). The input nest crosses as its leaves
    (``.npz``) and its structure (JSON); the child sends the outputs back the same way, so they
    come back in the model's own structure.

    LoaderError names the format, the artifact, the runtime and the cause (exit status, crash
    signal, timeout, the child's last error line, the ops a runtime does not register).
    """
    import json
    import tempfile

    cls = type(fmt)
    what = (f"[{artifact.format}] {runtime} for {artifact.path}" if runtime else
            f"[{artifact.format}] subprocess loader for {artifact.path}")
    if runtime is not None and runtime.problem():
        raise LoaderError(f"[{artifact.format}] {runtime.problem()}")
    with tempfile.TemporaryDirectory(prefix="modelpersist-subprocess-") as scratch:
        work = Path(scratch)
        from .. import byte_strings
        from ..nest import as_array, flatten, pack, present, structure_of

        leaves = [] if inputs is None else flatten(inputs)
        arrays: dict[str, Any] = {f"input_{i}": as_array(x, "input") for i, x in
                                  enumerate(leaves)}
        np.savez(work / "inputs.npz", **byte_strings.pack(arrays))
        request = {
            "input_structure": None if inputs is None else structure_of(inputs),
            "outputs_json": str(work / "outputs.json"),
            "artifact_dir": str(artifact.directory),
            "format_class": f"{cls.__module__}:{cls.__qualname__}",
            "inputs_npz": str(work / "inputs.npz"),
            "outputs_npz": str(work / "outputs.npz"),
            "options": dict(options or {}),
            "sys_path": [str(p) for p in sys_path],
            "imports": list(imports),
        }
        if runtime is not None:
            from .runtimes import plugin_root

            request["plugin_root"] = str(plugin_root(work))
            request["runtime_json"] = str(work / "runtime.json")
        (work / "request.json").write_text(json.dumps(request))
        proc = _start(work / "request.json", work, runtime, what=what, timeout=timeout)
        if proc.returncode != 0:
            raise _child_error(what, proc, runtime, work / "runtime.json")
        with np.load(work / "outputs.npz", allow_pickle=False) as npz:
            members = byte_strings.unpack(npz)
        flat = [members[f"output_{i}"] for i in range(len(members))]
        # A lone array or a flat list comes back as a list, as it always did.
        return present(pack(json.loads((work / "outputs.json").read_text()), flat))


def subprocess_env() -> dict[str, str]:
    """The environment of a subprocess-loader child: ours without PYTHON* variables (no
    PYTHONPATH into the test's code), TensorFlow's C++ start-up lines off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def prestart_subprocess(runtimes: Sequence[Runtime] = (), here: bool = True) -> None:
    """Start warm interpreters importing TensorFlow now, while the first items run, for the
    subprocess-loader items to come (`here`) and those of `runtimes` (loaders.warm)."""
    for runtime in ([None] if here else []) + list(runtimes):
        warm.prestart(server_command(runtime), subprocess_env())


def _start(request_path: Path, work: Path, runtime: Runtime | None, *, what: str,
           timeout: float) -> Any:
    """Run the runner on `request_path` in a child forked from a warm interpreter of this
    Python or the runtime's, or else a cold start of it; the finished process."""
    env = subprocess_env()
    python = sys.executable if runtime is None else runtime.python

    def cold() -> Any:
        try:
            return run_child([python, "-I", str(RUNNER), str(request_path)],
                             what=what, timeout=timeout, cwd=work, env=env)
        except OSError as exc:  # the runtime's file is there but cannot be run
            raise LoaderError(f"{what}: cannot start {python}: {exc}") from None

    return warm.run(server_command(runtime), request_path, work, env=env, what=what,
                    timeout=timeout, cold=cold)


def server_command(runtime: Runtime | None) -> list[str]:
    """The warm interpreter of the subprocess loader, or of a runtime (whose Python gets the
    plugin's package from a directory kept for the session)."""
    if runtime is None:
        return warm.server_command(sys.executable, "subprocess", RUNNER)
    from .runtimes import session_plugin_root

    return warm.server_command(runtime.python, "subprocess", RUNNER, str(session_plugin_root()))


def _child_error(what: str, proc: Any, runtime: Runtime | None, versions: Path) -> LoaderError:
    """The LoaderError of a loader child that exited non-zero: its cause, and for a runtime
    which TensorFlow it runs (what its child wrote to `versions`) or why it cannot run."""
    import json

    from ..messages import child_failure, config_dump, error_line
    from .subprocess_runner import RUNTIME_UNFIT

    if runtime is not None and proc.returncode == RUNTIME_UNFIT:
        return LoaderError(
            f"{what}: this interpreter cannot run the plugin's loader: "
            f"{error_line(proc.stderr)}; a runtime needs Python >= 3.10 with tensorflow and "
            f"numpy ({runtime.source}; python -m pytest_modelpersist runtime create "
            f"{runtime.label} --tensorflow X.Y.Z makes one)")
    where = "a fresh interpreter"
    if runtime is not None:
        try:
            found = json.loads(versions.read_text())
        except (OSError, ValueError):  # it failed before saying (or while saying)
            found = {}
        where = f"its interpreter (TensorFlow {found.get('tensorflow', '?')})"
    message = child_failure(what, proc.stderr, where)
    if "UnregisteredOpError:" in message:
        tf = sys.modules.get("tensorflow")
        message += (f"\nthe artifact was saved with TensorFlow "
                    f"{getattr(tf, '__version__', '?')}: run it where those ops are registered "
                    "(a newer TensorFlow), or keep the model off them")
    error = LoaderError(message)
    error.details = config_dump(proc.stderr)
    return error


def run_with_capi(artifact: Any, inputs: Any, *, timeout: float = DEFAULT_TIMEOUT,
                  safe_mode: bool = True) -> Any:
    """Run an artifact through TensorFlow's C API; its outputs (a nest, per the manifest).

    With ``safe_mode`` (the default) the graph is screened in this process first, as the
    in-process restore screens it (formats.pb): the C API would run whatever it holds.

    Which C API call loads it follows from its files, whatever the format is called: a
    SavedModel directory (``saved_model.pb`` inside; fed and fetched through the signature
    named by ``meta["signature"]``, default ``serving_default``) or a GraphDef file (fed and
    fetched by the tensor names in ``meta["inputs"]`` / ``meta["outputs"]``). Which argument,
    output key or tensor each input and output path is comes from the manifest's io map.
    """
    import tempfile

    from ..formats.base import pack_outputs
    from ..models import as_input_list, signature_order
    from ..nest_tf import IOMap
    from .capi import CapiLoaderError, run_capi, savedmodel_signature

    io = IOMap.from_meta(artifact.meta)
    inputs = as_input_list(inputs)
    path = Path(artifact.path)
    if (path / "saved_model.pb").is_file():
        try:
            sig_in, sig_out = savedmodel_signature(
                path, artifact.meta.get("signature", "serving_default"))
        except CapiLoaderError as exc:
            raise LoaderError(f"[{artifact.format}] {exc}") from None
        # No io map (an older artifact; a Keras 2 one whose keys did not line up): the order
        # the save recorded, else names in natural order.
        in_keys = io.inputs.names if io else signature_order(sig_in, artifact.meta, "inputs")
        out_keys = io.outputs.names if io else signature_order(sig_out, artifact.meta, "outputs")
        feeds_names = [sig_in[k] for k in in_keys]
        fetches = [sig_out[k] for k in out_keys]
        kind = "savedmodel"
    elif path.is_file() and {"inputs", "outputs"} <= set(artifact.meta):
        feeds_names, fetches, kind = artifact.meta["inputs"], artifact.meta["outputs"], "pb"
    else:
        raise LoaderError(f"[{artifact.format}] {path}: the C API loader reads a SavedModel "
                          "directory, or a GraphDef file whose artifact names its input and "
                          "output tensors (meta 'inputs'/'outputs')")
    from ..formats.shards import check_recorded

    try:  # every shard the save wrote, as it wrote it
        check_recorded(artifact)
    except ValueError as exc:
        raise LoaderError(f"[{artifact.format}] C API loader: {exc}") from None
    if safe_mode:
        _screen(kind, path, artifact.format)
    if len(feeds_names) != len(inputs):
        raise LoaderError(f"[{artifact.format}] {path} takes {len(feeds_names)} inputs "
                          f"({feeds_names}), got {len(inputs)}")
    with tempfile.TemporaryDirectory(prefix="modelpersist-capi-") as scratch:
        try:
            flat = run_capi(kind, path, dict(zip(feeds_names, inputs, strict=True)), fetches,
                            workdir=scratch, timeout=timeout)
        except CapiLoaderError as exc:
            raise LoaderError(f"[{artifact.format}] {exc}") from None
    from ..nest import present

    return present(pack_outputs(artifact, flat))


def _screen(kind: str, path: Path, fmt: str) -> None:
    """LoaderError when the graph the C API would load holds unsafe ops (see formats.pb)."""
    from ..formats import pb
    from ..formats.containment import UnsafeArtifactError, check_checkpoint

    try:
        if kind == "savedmodel":
            pb.screen_saved_model(path, fmt=fmt)
            check_checkpoint(path / "variables" / "variables", path, fmt=fmt)
        else:
            pb.screen_graph_def(pb.read_graph_def(path), fmt=fmt, path=path)
    except (pb.UnsafeGraphError, UnsafeArtifactError, ValueError) as exc:  # unreadable: refused
        raise LoaderError(f"[{fmt}] C API loader: {exc}") from None


def remote_problem(fmt: Any, loader: str, options: Any, runtimes: Mapping[str, Runtime]
                   ) -> str | None:
    """Why `loader` (not inprocess) cannot restore `fmt` with the parsed RestoreOptions
    `options`: an unknown name, a loader the format does not take, build=/into=; or None."""
    if loader not in LOADERS and loader not in runtimes:
        return (f"unknown loader {loader!r}; known loaders: {', '.join(LOADERS)}"
                + (f"; runtimes: {', '.join(runtimes)}" if runtimes else ""))
    if not applies(loader, fmt):
        return (f"the {loader} loader does not apply to this format (it supports: "
                f"{', '.join(fmt.loaders)})")
    if options.into_model:
        return (f"the {loader} loader restores from the files alone; build=/into= need the "
                "model's code in this process")
    return None


def restored_elsewhere(fmt: Any, artifact: Any, loader: str, options: Any, check: Any) -> Any:
    """A formats.base.Restored whose every call loads and runs `artifact` in another process:
    through the C API (`loader` CAPI), a fresh interpreter (SUBPROCESS) or a runtime's (its
    label); `options` are the parsed RestoreOptions, `check` the test's CheckOptions (timeout,
    subprocess path and imports, runtimes)."""
    from ..formats.base import Restored

    timeout = check.timeout
    if loader == CAPI:
        return Restored(artifact, None,
                        lambda args: run_with_capi(artifact, args, timeout=timeout,
                                                   safe_mode=options.safe_mode),
                        how="TensorFlow's C API in a process without the tensorflow package",
                        takes_nest=True)
    runtime = check.runtimes.get(loader)
    return Restored(
        artifact, None,
        lambda args: run_in_subprocess(fmt, artifact, args, timeout=timeout,
                                       options=options.given(), sys_path=check.subprocess_path,
                                       imports=check.subprocess_imports, runtime=runtime),
        how=(f"{runtime}, a fresh interpreter" if runtime else
             "a fresh Python interpreter without the test's code (python -I)"),
        takes_nest=True,
    )
