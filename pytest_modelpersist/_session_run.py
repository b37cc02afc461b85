"""Session.run under the persist timeout, interruptible by Ctrl-C (issue 14, item 5).

A crafted graph can block forever (a dequeue from an empty queue, a receive nobody sends). A
C++ ``Session.run`` does not return to Python until it finishes, so neither pytest's timeout
nor SIGINT reaches it. Here every run carries TensorFlow's own deadline
(``RunOptions.timeout_in_ms``) and happens in a worker thread, so the main thread stays free
to take KeyboardInterrupt at once. TensorFlow is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

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
        raise TimeoutError(
            f"the graph did not finish within the persist timeout ({timeout:g} s): it may "
            "wait on a queue or another op that never completes; raise the limit with "
            "--persist-timeout or @pytest.mark.persist(timeout=...) if it is just slow"
        ) from None


def _in_thread(call: Callable[[], T]) -> T:
    """``call()`` in a daemon thread; its result or exception, in the calling thread."""
    result: list[Any] = []
    error: list[BaseException] = []

    def work() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # handed to the calling thread as is
            error.append(exc)

    worker = threading.Thread(target=work, name="modelpersist-session-run", daemon=True)
    worker.start()
    worker.join()  # KeyboardInterrupt is raised here; the abandoned run ends at its deadline
    if error:
        raise error[0]
    return result[0]
