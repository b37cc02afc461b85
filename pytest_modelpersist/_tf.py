"""Import TensorFlow only when needed, quietly, with one clear message when it is missing."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

from .errors import TensorFlowMissingError

INSTALL_HINT = (
    "pytest-modelpersist needs TensorFlow to save and restore models, and it is not installed "
    "in this environment ({python}). Install it with: pip install 'pytest-modelpersist[tf]' "
    "(tensorflow-cpu==2.21.0) or pip install tensorflow."
)


_silenced = False


def tensorflow_available() -> bool:
    """True when the `tensorflow` package can be found, without importing it."""
    return importlib.util.find_spec("tensorflow") is not None


@contextlib.contextmanager
def quiet_stderr() -> Iterator[list[str]]:
    """Send file descriptor 2 to a temporary file for the block.

    TensorFlow's C++ runtime prints absl/oneDNN lines straight to fd 2 while it loads, which
    neither `TF_CPP_MIN_LOG_LEVEL` nor pytest's capture fully hides. What was written is handed
    back in the yielded list so a caller can show it when something went wrong.
    """
    captured: list[str] = []
    # fd 2 itself, not sys.stderr.fileno(): under pytest's capture sys.stderr is a wrapper of
    # another file, while the C++ runtime writes to descriptor 2.
    fd = 2
    try:
        os.fstat(fd)
    except OSError:
        yield captured
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield captured
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", "replace"))


def _silence_python_loggers() -> None:
    for name in ("tensorflow", "absl", "keras", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(tensorflow|keras|absl)(\..*)?")
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with TensorFlow
        pass


def import_tensorflow() -> Any:
    """Return the `tensorflow` module, imported with its start-up noise hidden.

    Raises TensorFlowMissingError (one sentence with the install command) when it is absent.
    """
    global _silenced
    if "tensorflow" in sys.modules:
        if not _silenced:  # imported by the user's code: still hide its Python-side logging
            _silence_python_loggers()
            _silenced = True
        return sys.modules["tensorflow"]
    if not tensorflow_available():
        raise TensorFlowMissingError(INSTALL_HINT.format(python=sys.executable))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_stderr() as noise:
        try:
            import keras  # noqa: F401  - keras' own import-time messages are hidden too
            import tensorflow as tf
        except ImportError as exc:
            raise TensorFlowMissingError(
                f"importing TensorFlow failed: {exc}\n{''.join(noise)[-2000:]}"
            ) from exc
    _silence_python_loggers()
    _silenced = True
    return tf


def import_keras() -> Any:
    """Return the `keras` module (Keras 3), after a quiet TensorFlow import."""
    import_tensorflow()
    import keras

    return keras
