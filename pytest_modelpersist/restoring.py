"""Fill a model's variables from saved name -> value pairs, and account for every name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .models import GraphModel, RestoreReport, tf_variable, variables

Saved = Mapping[str, tuple[tuple[int, ...], Any]]  # name in the file -> (shape, dtype)


def _dtype_name(dtype: Any) -> str:
    return str(getattr(getattr(dtype, "base_dtype", dtype), "name", dtype))


def match_by_name(target: Any, saved: Saved) -> RestoreReport:
    """Pair the target's variables with saved values of the same name, assigning nothing.

    `restored` lists the pairs that can be assigned; a target variable with no saved value is
    missing, a saved value no variable takes is unused, a shape or dtype difference is a
    mismatch naming both.
    """
    report = RestoreReport()
    named = variables(target)
    for name, var in named.items():
        if name not in saved:
            report.missing.append(name)
            continue
        shape, dtype = saved[name]
        var_shape, var_dtype = tuple(var.shape), _dtype_name(var.dtype)
        if tuple(shape) != var_shape or _dtype_name(dtype) != var_dtype:
            report.mismatched.append(
                f"{name}: file {tuple(shape)} {_dtype_name(dtype)} vs model {var_shape} {var_dtype}"
            )
            continue
        report.restored.append(name)
    report.unused = [n for n in saved if n not in named]
    return report


def assign_by_name(target: Any, saved: Saved, read: Callable[[str], np.ndarray]) -> RestoreReport:
    """Assign each variable of `target` the saved value of the same name (see match_by_name)."""
    report = match_by_name(target, saved)
    named = variables(target)
    if isinstance(target, GraphModel):
        target.load_values([(named[n], read(n)) for n in report.restored])
    else:
        for name in report.restored:
            tf_variable(named[name]).assign(read(name))
    return report
