"""A warm interpreter: loads TensorFlow once, then forks one fresh child per restore.

Started by `loaders.warm` from a scratch directory with the command line and environment a
cold child of that loader would get, plus the runner's name:

* ``python -I warm_server.py subprocess SCRIPT [PLUGIN_ROOT]``: imports what
  `subprocess_runner` imports before it reads a request (TensorFlow, Keras and the plugin's own
  format modules: nothing of the test's code); a runtime's Python (another TensorFlow) gets
  the directory holding the plugin's package;
* ``python warm_server.py capi SCRIPT LIB_DIR``: imports `capi_runner` by path and loads
  TensorFlow's C libraries from LIB_DIR, never the ``tensorflow`` package or the plugin.

Neither runs a TensorFlow op. It prints ``{"ready": pid}``, then serves one JSON
request per stdin line: ``{"request": path, "cwd": dir, "stderr": path}``. For each it forks a
child that runs SCRIPT as ``python SCRIPT request`` would (its imports are loaded already)
with its stdout discarded and its stderr in the given file, answers ``{"pid": child}`` at once
and ``{"rc": status}`` when the child ended (negative: the signal that killed it). A child is
used for exactly one restore; end of stdin ends the server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import runpy
import signal
import sys


def _preload(kind: str, args: list[str]) -> None:
    """Load what a runner of `kind` loads before it reads a request."""
    here = os.path.dirname(os.path.abspath(__file__))
    if kind == "capi":  # by path, like the runner itself: not the plugin's package
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
        spec = importlib.util.spec_from_file_location("capi_runner",
                                                      os.path.join(here, "capi_runner.py"))
        assert spec is not None and spec.loader is not None
        runner = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(runner)
        runner.preload(*args)
    else:
        sys.path[:0] = args  # a runtime's Python: the directory holding the plugin's package
        from pytest_modelpersist.loaders import subprocess_runner

        subprocess_runner.preload()


def _child(script: str, request: dict[str, str]) -> int:
    """In the forked child: run `script` on the request as ``python script request`` would
    (its imports are already loaded); its exit status."""
    os.chdir(request["cwd"])
    err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # fd 1 is the server's answer channel: never the child's
    os.dup2(err, 2)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.argv = [script, request["request"]]
    runpy.run_path(script, run_name="__main__")
    return 0


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the plugin ends requests and the server
    kind, script, *args = sys.argv[1:]
    _preload(kind, args)
    answer = sys.stdout
    answer.write(json.dumps({"ready": os.getpid()}) + "\n")
    answer.flush()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 70
            try:
                code = _child(script, request)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        answer.write(json.dumps({"pid": pid}) + "\n")
        answer.flush()
        _, status = os.waitpid(pid, 0)
        answer.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")
        answer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
