"""Where a restored or converted Keras model starts computing something else, layer by layer.

When outputs mismatch, the question a person asks next is *which layer*. For a Functional or
Sequential Keras model this module builds, for the original and for the restored model, one
model whose outputs are every layer's output, runs both on the same inputs and reports the
first layer (in the model's topological order) whose outputs differ beyond tolerance, with
what explains it: that layer's weights (identical or not) and its configuration, including
plain attributes that `get_config()` forgot (a layer that does not serialize ``factor`` comes
back with its default):

    first divergence: layer 'scale' (Scale), max abs 0.31; its weights restored identical;
    its config differs: factor 2.5 != 1.0 (an attribute get_config() does not return)

For a TFLite artifact, the interpreter keeps every intermediate tensor
(``experimental_preserve_all_tensors=True``) and a layer is matched to the last tensor whose
name carries the layer's name and whose shape is the layer's output shape; layers without such
a tensor (fused away) are passed over.

Bounded: at most MAX_LAYERS layers are compared (the first ones; a report says when it stopped
there). Subclassed models have no layer graph to tap and are not explained.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .compare import Tolerance, compare_array, tolerance_for

if TYPE_CHECKING:
    from .formats.base import Restored
    from .settings import CheckOptions

#: Layers compared at most (one forward pass per model computes them all; the bound keeps the
#: extra outputs' memory and the report small for very deep models).
MAX_LAYERS = 200
_SCALARS = (bool, int, float, str, type(None))


@dataclass
class Divergence:
    """The first layer whose outputs differ, and what about it differs."""

    layer: str
    class_name: str
    max_abs: float
    weights: str
    config: str
    compared: int
    truncated: bool = False

    def __str__(self) -> str:
        text = (f"first divergence: layer {self.layer!r} ({self.class_name}), max abs "
                f"{self.max_abs:.3g}; {self.weights}; {self.config}")
        if self.truncated:
            text += f" (compared the first {self.compared} layers only)"
        return text


def tapped_layers(model: Any, max_layers: int = MAX_LAYERS) -> tuple[list[Any], bool]:
    """(layers whose single output can be tapped, in order; whether the list was cut)."""
    found = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            out = layer.output
        except (AttributeError, ValueError):  # a shared layer has several outputs: skip it
            continue
        if isinstance(out, (list, tuple, dict)):
            continue
        found.append(layer)
    return found[:max_layers], len(found) > max_layers


def layer_outputs(model: Any, layers: Sequence[Any], inputs: list[np.ndarray]) -> list[Any]:
    """Each layer's output on `inputs`, in one forward pass of a tapped copy of `model`."""
    import keras

    tapped = keras.Model(list(model.inputs), [layer.output for layer in layers])
    out = tapped(list(inputs), training=False)
    out = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o) for o in out]


def is_layer_graph(model: Any) -> bool:
    """True for a Functional or Sequential Keras model (one whose layers can be tapped)."""
    import sys

    if "keras" not in sys.modules:
        return False
    import keras

    try:
        from keras.src.models.functional import Functional
    except ImportError:  # another Keras layout: Sequential models still qualify
        return isinstance(model, keras.Sequential)
    return isinstance(model, (Functional, keras.Sequential))


def first_divergence(original: Any, restored: Any, inputs: list[np.ndarray], *,
                     tolerance: Tolerance | None = None,
                     max_layers: int = MAX_LAYERS) -> Divergence | None:
    """The first layer of `restored` whose output differs from `original`'s, or None.

    Both must be Functional or Sequential Keras models with the same layers (paired by
    position; a layer whose class differs is reported as the divergence itself).
    """
    layers, cut = tapped_layers(original, max_layers)
    other = {layer.name: layer for layer in restored.layers}
    by_position, _ = tapped_layers(restored, max_layers)
    pairs = [(a, other.get(a.name) or (by_position[i] if i < len(by_position) else None))
             for i, a in enumerate(layers)]
    pairs = [(a, b) for a, b in pairs if b is not None]
    if not pairs:
        return None
    expected = layer_outputs(original, [a for a, _ in pairs], inputs)
    actual = layer_outputs(restored, [b for _, b in pairs], inputs)
    return _first(pairs, expected, actual, tolerance, cut)


def _first(pairs: Sequence[tuple[Any, Any]], expected: Sequence[np.ndarray],
           actual: Sequence[np.ndarray | None], tolerance: Tolerance | None,
           cut: bool) -> Divergence | None:
    for (a, b), e, o in zip(pairs, expected, actual, strict=True):
        if o is None:
            continue
        tol = tolerance or tolerance_for(e.dtype)
        result = compare_array(e, o, tol, name=a.name)
        if result.ok:
            continue
        max_abs = float("inf") if result.problem else result.max_abs
        return Divergence(a.name, type(a).__name__, max_abs, weights_difference(a, b),
                          config_difference(a, b), len(pairs), cut)
    return None


def weights_difference(a: Any, b: Any) -> str:
    """One phrase on how layer `b`'s weights differ from `a`'s ("restored identical", ...)."""
    wa, wb = a.get_weights(), b.get_weights()
    if not wa and not wb:
        return "it has no weights"
    if len(wa) != len(wb):
        return f"its weights differ in number: {len(wa)} != {len(wb)}"
    names = [getattr(v, "name", str(i)) for i, v in enumerate(a.weights)]
    diffs = []
    for name, x, y in zip(names, wa, wb, strict=False):
        if x.shape != y.shape:
            diffs.append(f"{name} shape {x.shape} != {y.shape}")
        elif not np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"):
            diffs.append(f"{name} max abs {float(np.max(np.abs(x - y))):.3g}")
    return ("its weights restored identical" if not diffs
            else "its weights differ: " + ", ".join(diffs))


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, _SCALARS) for v in value)
    return isinstance(value, _SCALARS)


def config_difference(a: Any, b: Any) -> str:
    """One phrase on how `b`'s configuration differs from `a`'s: get_config() entries, then
    plain public attributes (numbers, strings, tuples of them) get_config() does not return."""
    ca, cb = _config(a), _config(b)
    diffs = [f"{k} {ca.get(k)!r} != {cb.get(k)!r}" for k in sorted(set(ca) | set(cb))
             if k != "name" and ca.get(k) != cb.get(k)]
    va, vb = vars(a), vars(b)
    attrs = [k for k in sorted(va) if not k.startswith("_") and k not in ca and _plain(va[k])
             and k in vb and va[k] != vb[k]]
    diffs += [f"{k} {va[k]!r} != {vb[k]!r} (an attribute get_config() does not return)"
              for k in attrs]
    return "its config is the same" if not diffs else "its config differs: " + "; ".join(diffs)


def _config(layer: Any) -> dict[str, Any]:
    try:
        config = layer.get_config()
    except Exception:  # a layer whose get_config raises: its attributes still tell
        return {}
    return {k: repr(v) if not _plain(v) else v for k, v in config.items()}


def explain(original: Any, restored: Any, inputs: list[np.ndarray], *,
            tolerance: Tolerance | None = None) -> str:
    """A line for a mismatch report: the first divergence, or why there is none to show."""
    if not (is_layer_graph(original) and is_layer_graph(restored)):
        return ""
    found = first_divergence(original, restored, inputs, tolerance=tolerance)
    if found is None:
        return "layer by layer: every tapped layer's output matches (the difference is after)"
    return str(found)


def explain_tflite(original: Any, tensors: Callable[[], dict[str, np.ndarray]],
                   inputs: list[np.ndarray], *, tolerance: Tolerance | None = None) -> str:
    """The same for a TFLite conversion: Keras layers matched to the interpreter's tensors.

    `tensors` runs the converted model and returns every tensor by name
    (formats.tflite.all_tensors). A tensor belongs to a layer when a part of its name (TFLite
    joins fused ops' names with ';') has the layer's name as a scope (``hidden`` or
    ``hidden_1``, as tracing names it); the layer's output is the last such tensor of the
    layer's output shape.
    """
    if not is_layer_graph(original):
        return ""
    layers, cut = tapped_layers(original)
    expected = layer_outputs(original, layers, inputs)
    found = list(tensors().items())
    actual = [_tensor_of(layer.name, e.shape, found) for layer, e in zip(layers, expected,
                                                                         strict=True)]
    mapped = sum(a is not None for a in actual)
    result = _first([(layer, layer) for layer in layers], expected, actual, tolerance, cut)
    if result is None:
        return (f"layer by layer: TFLite tensors matched {mapped} of {len(layers)} layers "
                "(others were fused away); no matched layer differs")
    return (f"first divergence in the converted model: layer {result.layer!r} "
            f"({result.class_name}), max abs {result.max_abs:.3g} (TFLite tensors matched "
            f"{mapped} of {len(layers)} layers)")


def _tensor_of(layer: str, shape: tuple[int, ...],
               found: Sequence[tuple[str, np.ndarray]]) -> np.ndarray | None:
    scope = re.compile(rf"^{re.escape(layer)}(_\d+)?$")
    match = [v for name, v in found if v.shape == shape and any(
        scope.match(part) for piece in name.split(";") for part in piece.split("/")[:-1])]
    return match[-1] if match else None


def explain_restored(original: Any, restored: Restored, inputs: list[np.ndarray], *,
                     tolerance: Tolerance | None = None) -> str:
    """The divergence line for a mismatching `restored` (formats.base.Restored), or ''.

    A TFLite restore hands its intermediate tensors (`restored.intermediates`); a restore
    that gives back a Keras model is compared layer by layer. Explaining is a diagnosis on top
    of a failure already found: if it breaks, the line says so and the failure stands.
    """
    try:
        intermediates = restored.intermediates
        if intermediates is not None:
            return explain_tflite(original, lambda: intermediates(inputs), inputs,
                                  tolerance=tolerance)
        return explain(original, restored.model, inputs, tolerance=tolerance)
    except Exception as exc:  # the mismatch report must survive a failed diagnosis
        return f"layer by layer: could not compare ({type(exc).__name__}: {exc})"[:300]



def divergence_line(original: Any, restored: Any, inputs: Any, settings: CheckOptions) -> str:
    """The mismatch report's last line under `settings`' tolerances: a newline and the first
    diverging layer (explain_restored), or ''."""
    from .models import as_input_list

    rtol, atol = settings.scalar_tolerance(strictest=True)  # per-output keys name no layer
    layer_tol = tolerance_for("float32", table=settings.table, rtol=rtol, atol=atol,
                              exact=settings.exact)
    where = explain_restored(original, restored, as_input_list(inputs), tolerance=layer_tol)
    return f"\n{where}" if where else ""
