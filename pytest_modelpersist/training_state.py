"""Training state of a Keras model, compared between an original and its restore.

Variables are paired by position (a model rebuilt by `build()` has the same variables in the
same order, though auto-generated layer names may differ: ``dense_1`` for ``dense``) and named
by the original's Keras 3 paths (``dense/kernel``, ``optimizer/dense_kernel_momentum``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

Pair = tuple[str, Any, Any]  # name, original variable, restored variable
MAX_SHOWN = 12
#: Keras 3 seed generators keep their state in a variable no format saves (Dropout's masks).
RNG_SUFFIX = "seed_generator_state"


def name_of(v: Any) -> str:
    """Keras 3's variable path, or a Keras 2 variable's name without its ``:0``."""
    return str(getattr(v, "path", None) or getattr(v, "name", "?")).split(":", 1)[0]


def tail(path: str, owners: Collection[str] = ()) -> str:
    """A path without its owner: ``adam/x`` and ``adam_1/x`` are the same optimizer slot.

    With `owners` (the optimizers' names) only a first part that is one of them goes: a Keras 2
    slot is ``m/dense/kernel`` or, built in the optimizer's name scope, ``Adam/m/dense/kernel``.
    """
    head, sep, rest = path.partition("/")
    return rest if sep and (not owners or head in owners) else path


def pair_variables(ours: Sequence[Any], theirs: Sequence[Any], *, optimizer: bool = False,
                   owners: Collection[str] = ()) -> tuple[list[Pair], list[str]]:
    """Pairs by position when the counts match, else by path; plus the original's names that
    have no partner. An optimizer's variables are named ``optimizer/<slot>``
    (``optimizer/dense_kernel_momentum``): its own name (``adam_3``, one of `owners` when
    given) depends on how many optimizers the process made before."""
    pairs, missing = _pairs(ours, theirs, owners)
    if optimizer:
        pairs = [(f"optimizer/{tail(n, owners)}", a, b) for n, a, b in pairs]
        missing = [f"optimizer/{tail(n, owners)}" for n in missing]
    return pairs, missing


def _pairs(ours: Sequence[Any], theirs: Sequence[Any], owners: Collection[str]
           ) -> tuple[list[Pair], list[str]]:
    if len(ours) == len(theirs):
        return [(name_of(a), a, b) for a, b in zip(ours, theirs, strict=True)], []

    by_path = {name_of(b): b for b in theirs}
    by_tail = {tail(name_of(b), owners): b for b in theirs}
    pairs, missing = [], []
    for a in ours:
        partner = by_path.get(name_of(a), by_tail.get(tail(name_of(a), owners)))
        if partner is None:
            missing.append(name_of(a))
        else:
            pairs.append((name_of(a), a, partner))
    return pairs, missing


def align_rng(pairs: Sequence[Pair]) -> list[str]:
    """Give the restored seed-generator states the original's values; returns their names.

    No format saves them, and a resumed run with other dropout masks is expected to differ
    from the uninterrupted one, which would hide what the check is about.
    """
    aligned = []
    for name, a, b in pairs:
        if name.endswith(RNG_SUFFIX) and not np.array_equal(a.numpy(), b.numpy()):
            b.assign(a.numpy())
            aligned.append(name)
    return aligned


def _difference(name: str, a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"{name} (shape {list(a.shape)} -> {list(b.shape)})"
    if a.size == 1:
        return f"{name} ({a.reshape(-1)[0]:.8g} -> {b.reshape(-1)[0]:.8g})"
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        return f"{name} (max abs diff {np.nanmax(diff):.3g})"
    return f"{name} ({int(np.sum(a != b))} of {a.size} elements differ)"


def describe_differences(pairs: Sequence[Pair], *, rtol: float, atol: float) -> list[str]:
    """The pairs whose values differ beyond the tolerance, each named with how much."""
    found = []
    for name, a, b in pairs:
        x, y = np.asarray(a.numpy()), np.asarray(b.numpy())
        if x.shape == y.shape and (np.array_equal(x, y, equal_nan=x.dtype.kind == "f") or (
                x.dtype.kind in "fc" and np.allclose(x, y, rtol=rtol, atol=atol))):
            continue
        found.append(_difference(name, x, y))
    if len(found) > MAX_SHOWN:
        return found[:MAX_SHOWN] + [f"... and {len(found) - MAX_SHOWN} more"]
    return found


def layers_of(model: Any) -> list[Any]:
    """Every layer, nested models' layers included, in order."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        if hasattr(layer, "layers"):
            found.extend(layers_of(layer))
    return found


def preprocessing_state(layer: Any) -> dict[str, np.ndarray]:
    """What an adapted preprocessing layer computes with: a vocabulary (StringLookup,
    IntegerLookup, TextVectorization), a Normalization's mean and variance (the tensors its
    `call` uses, which a variable-level restore leaves stale until `finalize_state()`)."""
    state: dict[str, np.ndarray] = {}
    if callable(getattr(layer, "get_vocabulary", None)):
        state["vocabulary"] = np.asarray([str(t) for t in layer.get_vocabulary()])
    elif callable(getattr(layer, "adapt", None)):
        for attr in ("mean", "variance"):
            value = getattr(layer, attr, None)
            if value is not None and hasattr(value, "shape"):
                state[attr] = np.asarray(value)
    return state


def preprocessing_problems(original: Any, restored: Any) -> list[str]:
    """One line per preprocessing layer whose state the restore did not bring back."""
    problems = []
    for ours, theirs in zip(layers_of(original), layers_of(restored), strict=False):
        want, got = preprocessing_state(ours), preprocessing_state(theirs)
        differing = [k for k in want if k not in got or want[k].shape != got[k].shape
                     or not np.array_equal(want[k], got[k])]
        if not differing:
            continue
        kind = type(ours).__name__
        if "vocabulary" in differing:
            detail = (f"vocabulary not restored ({want['vocabulary'].size} terms in the "
                      f"original, {got.get('vocabulary', np.array([])).size} restored)")
        else:
            detail = (f"{', '.join(differing)} not restored (the restored layer still computes "
                      "with other statistics; after a variable-level restore, call "
                      "layer.finalize_state())")
        problems.append(f"preprocessing layer {ours.name!r} ({kind}): {detail}")
    return problems


def _plain(value: Any) -> Any:
    """A serialized plain function (``{"class_name": "function", "config":
    "binary_crossentropy"}``, how legacy HDF5 stores a loss given by name) as its name."""
    if isinstance(value, Mapping):
        if value.get("class_name") == "function" and isinstance(value.get("config"), str):
            return value["config"]
        config = value.get("config")
        if value.get("class_name") == "MeanMetricWrapper" and isinstance(config, Mapping):
            return config.get("name")  # Keras 2's legacy HDF5: a metric given by name
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _one_output(metrics: Any) -> Any:
    """``[[m1, m2]]`` (Keras 2's legacy HDF5 lists metrics per output) as ``[m1, m2]``."""
    if isinstance(metrics, list) and len(metrics) == 1 and isinstance(metrics[0], list):
        return metrics[0]
    return metrics


def compile_summary(model: Any) -> dict[str, Any]:
    """Loss, metrics and optimizer class and hyper-parameters (not its auto-generated name)."""
    config = dict(model.get_compile_config() or {})
    optimizer = model.optimizer
    opt_config = {k: v for k, v in optimizer.get_config().items() if k != "name"}
    return {
        "loss": _plain(config.get("loss")),
        "loss_weights": _plain(config.get("loss_weights")),
        "metrics": _plain(_one_output(config.get("metrics"))),
        "weighted_metrics": _plain(_one_output(config.get("weighted_metrics"))),
        "optimizer": type(optimizer).__name__,
        **{f"optimizer.{k}": v for k, v in opt_config.items()},
    }


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``optimizer.learning_rate 0.01 -> 0.001`` for each differing key."""
    return [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]
