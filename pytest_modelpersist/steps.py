"""One step of a persist call, and what its failure reads like.

An expected exception (errors.is_expected: library errors, OSError, the plugin's own user
errors) becomes a clean failure naming the format, the file and the cause; anything else is a
bug and keeps its traceback (with a note naming the step on Python 3.11+).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from .errors import LoaderError, first_lines, is_expected
from .reporting import record, record_details

if TYPE_CHECKING:
    from .cache import Claim
    from .formats.base import Artifact, Format
    from .models import ModelInfo

T = TypeVar("T")


def model_info(fmt: str, node: Any, model: Any) -> ModelInfo:
    """models.describe(model), recorded on the item; a model it cannot describe fails cleanly."""
    __tracebackhide__ = True
    from .models import describe

    try:
        info = describe(model)
    except Exception as exc:
        if not is_expected(exc):
            raise
        pytest.fail(f"[{fmt}] {first_lines(exc)}", pytrace=False)
    record(node, "model_kind", info.kind)
    return info


@contextlib.contextmanager
def remember_failure(claim: Claim) -> Iterator[None]:
    """Record a clean save failure in the cache (and for the other xdist workers) under the
    claim's key."""
    try:
        yield
    except pytest.fail.Exception as exc:
        claim.fail(str(exc.msg))
        raise


def replay_failure(claim: Claim) -> None:
    """Fail as an earlier item's save of the same model and format failed, if one did."""
    __tracebackhide__ = True
    if claim.failure is not None:
        pytest.fail(claim.failure + "\n(this save failed for an earlier item of the same model "
                    "in this session: not redone)", pytrace=False)


@contextlib.contextmanager
def step(fmt: Format, node: Any, action: str, path: Path | None, info: ModelInfo | None, *,
         artifact: Artifact | None = None) -> Iterator[None]:
    """Turn an expected exception (errors.is_expected) into a failure naming the format,
    the file and the cause; anything else is a bug and keeps its traceback."""
    __tracebackhide__ = True
    message = None
    try:
        yield
    except Exception as exc:
        record_details(node, exc)
        if not is_expected(exc):
            if sys.version_info >= (3, 11):
                exc.add_note(f"(raised during the [{fmt.name}] {action}"
                             + (f" of {path}" if path is not None else "") + ")")
            raise
        where = f" {path}" if path is not None else ""
        kind = f" ({info.detail})" if info is not None else ""
        message = (f"[{fmt.name}] {action}{where}{kind} failed: "
                   f"{type(exc).__name__}: {first_lines(exc, 8)}")
        if isinstance(exc, LoaderError):  # already names format, file and cause
            message = str(exc)
        notes = fmt.diagnose(artifact, exc) if artifact is not None else []
        if notes:
            message += "\nlooking at the files: " + "; ".join(notes)
    if message is not None:  # no chained library traceback under the message
        raise pytest.fail.Exception(message, pytrace=False) from None


def or_fail(label: str, call: Callable[[], T]) -> T:
    """`call()`; a ValueError (a bad option value) fails the test with `label` + its message,
    without a traceback."""
    __tracebackhide__ = True
    try:
        return call()
    except ValueError as exc:
        message = f"{label}{exc}"
    raise pytest.fail.Exception(message, pytrace=False) from None


def refuse_composite_inputs(fmt: str, inputs: Any) -> None:
    """Fail the test, once and clearly, when an input leaf is a SparseTensor or RaggedTensor:
    inputs are fed, stored (goldens, archives, other processes) and fingerprinted as arrays;
    composite outputs are supported."""
    __tracebackhide__ = True
    from .nest import composite_inputs

    found = composite_inputs(inputs)
    if found:
        pytest.fail(
            f"[{fmt}] the input {', '.join(found)}: composite tensors are not supported as "
            "inputs yet (SparseTensor and RaggedTensor outputs are). Check the model on dense "
            "inputs (x.to_tensor(), tf.sparse.to_dense(x)), or on the component arrays of a "
            "wrapper that rebuilds the composite inside the model", pytrace=False)
