"""Warm interpreters for the subprocess and C API loaders: TensorFlow loaded once, a fresh
child per item.

A cold ``python -I subprocess_runner.py`` spends ~4 s of CPU importing TensorFlow before it
restores anything (a cold ``capi_runner.py`` ~1 s loading TensorFlow's C libraries). A warm
interpreter (warm_server.py) is started once per pytest process (and per command line and
environment), loads what the runner loads before reading a request, nothing of the test's code,
and forks one child per restore: each item still gets a process of its own that dies after
that one restore, with the same isolation, environment, scratch directory, timeout and crash
reports as a cold start. Where fork is unavailable, the server fails to start or dies, or
``PERSIST_WARM_INTERPRETERS=0`` is set, the item starts cold.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .process import LoaderError, crashed, timed_out

SERVER = Path(__file__).with_name("warm_server.py")
START_TIMEOUT = 120.0  # importing TensorFlow on a loaded 2-core machine
# Set by pytest per test phase; the child never reads it, so it does not make a new server.
_VOLATILE = ("PYTEST_CURRENT_TEST",)


class WarmServerGone(Exception):
    """The warm interpreter is not answering: the caller starts the child cold."""


def enabled() -> bool:
    return hasattr(os, "fork") and os.environ.get("PERSIST_WARM_INTERPRETERS", "1") != "0"


def server_command(python: str, runner: str, script: Path, *args: str) -> list[str]:
    """The command line of a warm interpreter whose children run `script` ("subprocess":
    started ``-I`` like the cold subprocess child, for a runtime's Python with the directory
    holding the plugin's package; "capi" with the TensorFlow library directory)."""
    isolated = ["-I"] if runner == "subprocess" else []
    return [python, *isolated, str(SERVER), runner, str(script), *args]


def _key(command: Sequence[str], env: Mapping[str, str]) -> tuple[Any, ...]:
    return tuple(command), tuple(sorted((k, v) for k, v in env.items() if k not in _VOLATILE))


class WarmServer:
    """One warm_server.py process and its answer channel."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str]) -> None:
        self.key = _key(command, env)
        self._scratch = tempfile.TemporaryDirectory(prefix="modelpersist-warm-")
        self._log = Path(self._scratch.name) / "server.stderr"
        with open(self._log, "w") as log:
            try:
                self.proc = subprocess.Popen(
                    list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=log, cwd=self._scratch.name, env=dict(env), start_new_session=True)
            except OSError as exc:  # a runtime's Python that cannot be run: the cold start says
                self._scratch.cleanup()
                raise WarmServerGone(str(exc)) from None
        self._buffer = b""
        self._ready = False

    def _line(self, deadline: float) -> dict[str, Any] | None:
        """The server's next answer, or None at the deadline."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise WarmServerGone(self._log.read_text(errors="replace")[-2000:])
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def run(self, request: Path, cwd: Path, *, what: str, timeout: float,
            error: type[LoaderError] = LoaderError) -> subprocess.CompletedProcess[str]:
        """Run one request in a forked child; like process.run_child (timeout and signal ->
        `error`, other exit statuses returned)."""
        if not self._ready:
            if self._line(time.monotonic() + START_TIMEOUT) is None:
                raise WarmServerGone("the warm interpreter did not start in time")
            self._ready = True
        stderr_path = cwd / "child.stderr"
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps({"request": str(request), "cwd": str(cwd),
                                               "stderr": str(stderr_path)}) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as exc:
            raise WarmServerGone(str(exc)) from None
        start = time.monotonic()
        answer = self._line(start + 30)
        if answer is None:
            raise WarmServerGone("the warm interpreter did not fork in time")
        pid = answer["pid"]
        try:
            answer = self._line(start + timeout)
        except BaseException:  # Ctrl-C: the child must not outlive the test
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            raise
        if answer is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._line(time.monotonic() + 30)  # its status
            raise timed_out(what, timeout, _read(stderr_path), error)
        rc, stderr = int(answer["rc"]), _read(stderr_path)
        if rc < 0:
            raise crashed(what, rc, time.monotonic() - start, stderr, error)
        return subprocess.CompletedProcess(["warm child", str(request)], rc, "", stderr)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._scratch.cleanup()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


# One warm interpreter per runner ("subprocess", "capi") and Python (this one, or a runtime's)
# in a pytest process: the newest command line and environment asked for.
_servers: dict[tuple[str, str], WarmServer] = {}


def _slot(command: Sequence[str]) -> tuple[str, str]:
    """(runner, python) of a server command line."""
    return command[command.index(str(SERVER)) + 1], command[0]


def server_for(command: Sequence[str], env: Mapping[str, str]) -> WarmServer:
    """The warm interpreter started by `command` with exactly `env`, started now if there is
    none (the slot's server for another environment is ended first)."""
    slot = _slot(command)
    server = _servers.get(slot)
    if server is not None and server.key == _key(command, env) and server.proc.poll() is None:
        return server
    if server is not None:
        server.close()
    server = _servers[slot] = WarmServer(command, env)
    return server


def prestart(command: Sequence[str], env: Mapping[str, str]) -> None:
    """Start loading TensorFlow in a warm interpreter now, while other items run."""
    if enabled():
        with contextlib.suppress(WarmServerGone):  # the item's cold start will say why
            server_for(command, env)


def run(command: Sequence[str], request: Path, cwd: Path, *, env: Mapping[str, str], what: str,
        timeout: float, cold: Any, error: type[LoaderError] = LoaderError
        ) -> subprocess.CompletedProcess[str]:
    """Run the runner for `request` in a child forked from the warm interpreter `command`
    starts, or `cold()`."""
    if not enabled():
        return cold()
    try:
        return server_for(command, env).run(request, cwd, what=what, timeout=timeout,
                                            error=error)
    except WarmServerGone:
        gone = _servers.pop(_slot(command), None)
        if gone is not None:
            gone.close()
        return cold()


@atexit.register
def _close_all() -> None:
    for server in list(_servers.values()):
        server.close()
    _servers.clear()
