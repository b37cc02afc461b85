"""The plugin's exception types, and which exceptions a `persist` step reports without a traceback.

Every error the plugin raises on purpose is a :class:`ModelPersistError`. A third-party format
raises one (usually :class:`PersistFailure`) to fail a test with just its message.

Which exceptions become a clean failure (`is_expected`) follows one rule, by who raised it:

* the plugin's own errors (`ModelPersistError`), `OSError` (a missing or unreadable file) and
  TensorFlow's `tf.errors.OpError` (the runtime's verdict on a file or a graph), wherever
  they come from;
* data errors (`ValueError`, `TypeError`, `LookupError`, `EOFError`, `RuntimeError`, a bad
  zip, or an exception class a library defines, like protobuf's `DecodeError` or ONNX
  Runtime's `Fail`) when the frame that raised them is in a library (TensorFlow, Keras, h5py,
  numpy, protobuf, ONNX, ONNX Runtime, tf2onnx, LiteRT, the standard library) or in the
  plugin's own modules: that is how those read a bad file or a bad model;
* (a function written in C raises "from" the Python frame that called it: numpy's C code
  called by a third-party format counts as that format's);
* anything else is a bug, in the plugin, in the user's code (`build=`) or in a third-party
  format (an `AttributeError`, a `ValueError` raised by the format's own code): it keeps its
  traceback, so the file and line are visible.
"""

from __future__ import annotations

import sys
import zipfile


class ModelPersistError(Exception):
    """Base class of every error raised by pytest-modelpersist."""


class UnknownFormatError(ModelPersistError, KeyError):
    """A format name that no plugin registered."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown persist format {self.name!r}; known formats: {', '.join(self.known)}"


class FormatContractError(ModelPersistError, TypeError):
    """A format registered without a member of the `Format` protocol, or with a bad one."""


class TensorFlowMissingError(ModelPersistError, ImportError):
    """TensorFlow is needed but cannot be imported."""


class PersistFailure(ModelPersistError, AssertionError):
    """A save, restore or comparison failed; the message names format, file and cause."""


class RestoreOptionError(ModelPersistError, TypeError):
    """A restore option the format does not take, or a value of the wrong type."""


class RestoreMapError(ModelPersistError, ValueError):
    """A `var_map` or `only` entry that names nothing, or maps two values onto one variable."""


class BuildError(ModelPersistError, TypeError):
    """A restore needs `build=` (a weights-only format) or `build()` did not return a model."""


class PersistWarning(UserWarning):
    """Something a test asked for that this format or library version could not do, and the
    plugin did otherwise (a sharded save written whole, say): the test runs on, warned."""


class ArtifactError(ModelPersistError, ValueError):
    """An artifact's files do not hold what the format needs (a graph without variables...)."""


class LoaderError(ModelPersistError, RuntimeError):
    """A loader process failed, crashed or timed out."""

    #: What the message left out for brevity (a Keras object config), for the report.
    details: str | None = None


#: Top-level packages whose exceptions are their verdict on a file or a model (the conversion
#: formats': ONNX Runtime refusing a converted graph is such a verdict, not a bug).
LIBRARIES = frozenset({"tensorflow", "keras", "tf_keras", "h5py", "numpy", "google", "ml_dtypes",
                       "absl", "pytest_modelpersist", "onnx", "onnxruntime", "tf2onnx",
                       "ai_edge_litert"})
DATA_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, LookupError, EOFError,
                                                RuntimeError, zipfile.BadZipFile)


def _raised_in(exc: BaseException) -> str:
    """The top-level package of the module whose frame raised `exc` ('' when unknown)."""
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).split(".", 1)[0]


def _is_op_error(exc: BaseException) -> bool:
    tf = sys.modules.get("tensorflow")
    errors = getattr(tf, "errors", None)
    op_error = getattr(errors, "OpError", None)
    return op_error is not None and isinstance(exc, op_error)


def is_expected(exc: BaseException) -> bool:
    """True when `exc` is a failure to report cleanly, False for a bug (see the module doc)."""
    if isinstance(exc, (ModelPersistError, OSError)) or _is_op_error(exc):
        return True
    where = _raised_in(exc)
    from_library = where in LIBRARIES or where in sys.stdlib_module_names
    library_class = type(exc).__module__.split(".", 1)[0] in LIBRARIES - {"pytest_modelpersist"}
    return from_library and (isinstance(exc, DATA_ERRORS) or library_class)


def first_lines(exc: BaseException, n: int = 6) -> str:
    """The first non-empty lines of an exception message (cleaned), joined on one line."""
    from .messages import clean_message

    lines = [ln.strip() for ln in clean_message(str(exc)).splitlines() if ln.strip()]
    return " / ".join(lines[:n]) if lines else type(exc).__name__
