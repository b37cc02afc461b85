"""Running a loader's child process: one place for timeouts, crashes and the child's stderr."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from ..errors import LoaderError

__all__ = ["LoaderError", "crashed", "run_child", "signal_name", "tail", "timed_out"]

_STDERR_TAIL = 2000


def signal_name(rc: int) -> str:
    """The name of the signal that ended a process with return code ``rc`` (< 0)."""
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def tail(text: str, limit: int = _STDERR_TAIL) -> str:
    """The end of a child's stderr, cleaned (messages.clean_message: TF start-up lines...)."""
    from ..messages import clean_message

    text = "\n".join(ln for ln in clean_message(text).splitlines() if ln.strip())
    return "..." + text[-limit:] if len(text) > limit else text


def run_child(cmd: Sequence[str], *, what: str, timeout: float,
              error: type[LoaderError] = LoaderError, **popen: Any
              ) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (text output captured, stdin closed) and return it once it exited.

    A timeout (the child is killed) and a death by signal raise ``error`` with ``what``, the
    cause and the end of the child's stderr; a non-zero exit status is left to the caller,
    who knows what the child meant by it.
    """
    start = time.perf_counter()
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, errors="replace",
                              timeout=timeout, stdin=subprocess.DEVNULL, **popen)
    except subprocess.TimeoutExpired as exc:
        raw = exc.stderr or b""
        stderr = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise timed_out(what, timeout, stderr, error) from None
    if proc.returncode < 0:
        raise crashed(what, proc.returncode, time.perf_counter() - start, proc.stderr, error)
    return proc


def timed_out(what: str, timeout: float, stderr: str,
              error: type[LoaderError] = LoaderError) -> LoaderError:
    """The error for a child killed at the timeout."""
    msg = (f"{what}: timed out after {timeout:g} s (the process was killed); "
           "raise it with --persist-timeout or the persist marker's timeout=")
    return error(msg + (f"\nits stderr:\n{tail(stderr)}" if tail(stderr) else ""))


def crashed(what: str, rc: int, elapsed: float, stderr: str,
            error: type[LoaderError] = LoaderError) -> LoaderError:
    """The error for a child ended by signal -`rc`."""
    return error(f"{what}: the process crashed with {signal_name(rc)} (exit code {rc}) after "
                 f"{elapsed:.2f} s\nits stderr:\n{tail(stderr)}")
