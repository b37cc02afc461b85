"""A warm interpreter: imports TensorFlow once, then forks one fresh child per restore.

Started with ``python -I warm_server.py`` by `loaders.warm`, from a scratch directory, with the
environment a cold subprocess loader would get. It imports what `subprocess_runner` imports
before it reads a request (TensorFlow and the plugin's own runner modules: nothing of the
test's code, and it runs no TensorFlow op), prints ``{"ready": pid}``, then serves one JSON
request per stdin line: ``{"request": path, "cwd": dir, "stderr": path}``. For each it forks a
child that runs `subprocess_runner.main(request)` with its stdout discarded and its stderr in
the given file, answers ``{"pid": child}`` at once and ``{"rc": status}`` when the child ended
(negative: the signal that killed it). A child is used for exactly one restore; end of stdin
ends the server.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def _child(request: dict[str, str]) -> int:
    """In the forked child: the runner's exit status for one request."""
    from pytest_modelpersist.loaders import subprocess_runner

    os.chdir(request["cwd"])
    err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # fd 1 is the server's answer channel: never the child's
    os.dup2(err, 2)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return subprocess_runner.main(request["request"])


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the plugin ends requests and the server
    from pytest_modelpersist.loaders import subprocess_runner

    subprocess_runner.preload()
    answer = sys.stdout
    answer.write(json.dumps({"ready": os.getpid()}) + "\n")
    answer.flush()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 70
            try:
                code = _child(request)
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
