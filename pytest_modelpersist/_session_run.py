"""Session.run under the persist timeout, interruptible by Ctrl-C (issue 14, item 5).

A crafted graph can block forever (a dequeue from an empty queue, a receive nobody sends). A
C++ ``Session.run`` does not return to Python until it finishes, so neither pytest's timeout
nor SIGINT reaches it. Here every run carries TensorFlow's own deadline
(``RunOptions.timeout_in_ms``) and happens in a worker thread, so the main thread stays free
to take KeyboardInterrupt at once. An eager function call (a SavedModel signature) has no such
option: it runs in a worker thread under a TensorFlow ``CancellationManager``, cancelled at the
deadline or on Ctrl-C (a blocked dequeue ends at once). TensorFlow is imported inside the
functions.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds a cancelled eager call may take to end before it is abandoned.
_CANCEL_GRACE = 10.0

#: Seconds between the calling thread's looks at a pending Ctrl-C while it waits.
_POLL = 0.1

#: Seconds a single Session.run may take (the persist timeout); None: no limit.
_RUN_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "modelpersist_run_timeout", default=None)


@contextlib.contextmanager
def run_timeout(seconds: float | None) -> Iterator[None]:
    """Limit every :func:`session_run` inside the block to ``seconds`` (the test's persist
    timeout); None or <= 0: no limit. Scoped, so one test's limit never leaks into another."""
    token = _RUN_TIMEOUT.set(None if seconds is None or seconds <= 0 else float(seconds))
    try:
        yield
    finally:
        _RUN_TIMEOUT.reset(token)


def with_run_timeout(call: Callable[..., T], seconds: float | None) -> Callable[..., T]:
    """``call`` run under :func:`run_timeout` (a restored model's runner, say)."""

    def limited(*args: Any, **kwargs: Any) -> T:
        with run_timeout(seconds):
            return call(*args, **kwargs)

    return limited


def session_run(session: Any, fetches: Any, feed_dict: Mapping[Any, Any] | None = None) -> Any:
    """``session.run(fetches, feed_dict)`` under the persist timeout, interruptible by Ctrl-C.

    Returns what ``session.run`` returns. TimeoutError names the limit when TensorFlow cancels
    the run at its deadline; other errors propagate unchanged.
    """
    import tensorflow as tf

    timeout = _RUN_TIMEOUT.get()
    options = None
    if timeout is not None:
        options = tf.compat.v1.RunOptions(timeout_in_ms=max(1, int(timeout * 1000)))
    try:
        return _in_thread(lambda: session.run(fetches, feed_dict=feed_dict, options=options))
    except tf.errors.DeadlineExceededError:
        raise _timeout_error(timeout) from None


def function_call(call: Callable[[], T]) -> T:
    """``call()`` (an eager tf.function call, a SavedModel signature) under the persist
    timeout, interruptible by Ctrl-C; returns its result.

    TimeoutError names the limit when the call is cancelled at the deadline; other errors
    propagate unchanged.
    """
    from tensorflow.python.eager import cancellation

    timeout = _RUN_TIMEOUT.get()
    manager = cancellation.CancellationManager()

    def cancellable() -> T:
        with cancellation.CancellationManagerContext(manager):
            return call()

    timed_out: list[bool] = []

    def cancel(expired: bool) -> None:
        timed_out.append(expired)
        manager.start_cancel()  # ops blocked in the call (a dequeue) fail at once

    try:
        return _in_thread(cancellable, timeout=timeout, cancel=cancel)
    except Exception:
        if timed_out == [True]:
            raise _timeout_error(timeout) from None
        raise


def _timeout_error(timeout: float | None) -> TimeoutError:
    return TimeoutError(
        f"the graph did not finish within the persist timeout ({timeout:g} s): it may "
        "wait on a queue or another op that never completes; raise the limit with "
        "--persist-timeout or @pytest.mark.persist(timeout=...) if it is just slow")


def _in_thread(call: Callable[[], T], *, timeout: float | None = None,
               cancel: Callable[[bool], None] | None = None) -> T:
    """``call()`` in a daemon thread; its result or exception, in the calling thread.

    With ``cancel``, ``cancel(True)`` is called once ``timeout`` seconds passed and
    ``cancel(False)`` on KeyboardInterrupt; a cancelled call is awaited _CANCEL_GRACE seconds,
    then abandoned (TimeoutError).
    """
    result: list[Any] = []
    error: list[BaseException] = []

    def work() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # handed to the calling thread as is
            error.append(exc)

    worker = threading.Thread(target=work, name="modelpersist-session-run", daemon=True)
    worker.start()
    deadline = None if timeout is None or cancel is None else time.monotonic() + timeout
    try:
        # KeyboardInterrupt is raised here; an abandoned Session.run ends at its deadline.
        # Joined in short slices: a SIGINT the kernel hands to one of TensorFlow's threads
        # only flags the main thread, which a join without a timeout never wakes up to see.
        while worker.is_alive() and (deadline is None or time.monotonic() < deadline):
            worker.join(_POLL if deadline is None else min(_POLL, deadline - time.monotonic()))
    except KeyboardInterrupt:
        if cancel is not None:
            cancel(False)
        raise
    if worker.is_alive() and cancel is not None:
        cancel(True)
        worker.join(_CANCEL_GRACE)
        if worker.is_alive():  # an op that ignores cancellation: abandon the daemon thread
            raise TimeoutError("the call did not end when cancelled")
    if error:
        raise error[0]
    return result[0]
