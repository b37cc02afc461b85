"""Perturbing the variables about to be restored, and telling afterwards which the restore left
alone: :func:`perturb` flips bits inside TensorFlow and keeps a few samples per variable
(:class:`Perturbation`); :func:`unrestored` compares those samples bit for bit.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._tf import import_tensorflow
from ..models import GraphModel, read_values, tf_variable, variables

#: Elements sampled per variable to tell whether a restore wrote it (first and last included).
SAMPLES = 64


def sample_indices(size: int, samples: int = SAMPLES) -> np.ndarray:
    """Up to `samples` flat indices spread evenly over `size` elements, first and last included."""
    if size <= samples:
        return np.arange(size, dtype=np.int64)
    return np.unique(np.linspace(0, size - 1, samples).round().astype(np.int64))


def _float_dtype(var: Any) -> Any:
    """The variable's TF dtype when it is floating or complex (perturbable), else None."""
    dtype = getattr(var.dtype, "base_dtype", var.dtype)
    return dtype if (dtype.is_floating or dtype.is_complex) else None


@functools.cache
def flip_mask(dtype: Any) -> tuple[Any, Any]:
    """(unsigned TF dtype of the same width, the bits the perturbation flips) of a float dtype.

    The sign bit and the highest mantissa bit (of each part, for complex): a normal x becomes -x
    times 1.25..1.5 or 0.67..0.75, 0 and subnormals become other (negative) subnormals. The
    exponent is left alone, so a finite value stays finite.
    """
    import ml_dtypes

    tf = import_tensorflow()
    part = dtype.real_dtype if dtype.is_complex else dtype
    bits = part.size * 8
    nmant = int(ml_dtypes.finfo(part.as_numpy_dtype).nmant)
    uint = {8: tf.uint8, 16: tf.uint16, 32: tf.uint32, 64: tf.uint64}[bits]
    return uint, np.array((1 << (bits - 1)) | (1 << (nmant - 1)), uint.as_numpy_dtype)


def _flipped(tf: Any, value: Any, dtype: Any) -> Any:
    """`value` with the bits of flip_mask flipped: a TF tensor of the same dtype and shape."""
    uint, mask = flip_mask(dtype)
    return tf.bitcast(tf.bitwise.bitwise_xor(tf.bitcast(value, uint), mask), dtype)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Exactly the same values, bit for bit (a NaN equals itself, 0.0 differs from -0.0)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


class Perturbation(Mapping[str, np.ndarray]):
    """The variables :func:`perturb` changed: name -> the sampled elements' perturbed values.

    It keeps what it needs to sample the same elements again after a restore
    (:func:`unrestored`), and nothing as large as a variable.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.marks: dict[str, np.ndarray] = {}
        self._eager: dict[str, tuple[Any, np.ndarray]] = {}  # name -> (tf.Variable, indices)
        self._graph: dict[str, Any] = {}  # name -> sample tensor of the model's graph

    def __getitem__(self, name: str) -> np.ndarray:
        return self.marks[name]

    def __iter__(self) -> Any:
        return iter(self.marks)

    def __len__(self) -> int:
        return len(self.marks)

    def samples(self) -> dict[str, np.ndarray]:
        """The sampled elements' current values (read again, now)."""
        if not self.marks:
            return {}
        if self._graph:
            names = list(self._graph)
            got = self.model.session.run([self._graph[n] for n in names])
            return {n: np.asarray(v) for n, v in zip(names, got, strict=True)}
        tf = import_tensorflow()
        return {n: np.asarray(tf.gather(tf.reshape(var, [-1]), idx).numpy())
                for n, (var, idx) in self._eager.items()}


def perturb(model: Any, *, named: Mapping[str, Any] | None = None,
            seed: int = 0) -> Perturbation:
    """Perturb every float variable so a restore that loads nothing is visible.

    `named` (name -> variable) limits it to those variables (default: all of
    ``variables(model)``); any other variable keeps its value exactly. Only floating (and
    complex) variables with at least one element are perturbed; int and bool ones stay as they
    are.

    Each perturbed element has its sign bit and its highest mantissa bit flipped (flip_mask),
    inside TensorFlow: one XOR pass over the variable, no numpy copy of it, no rounding. So
    every element changes, bit for bit and numerically, whatever its dtype (float16 and
    bfloat16 too) or value: x becomes about -1.5 x or -0.7 x (1e30 -> -1.5e30, 1 -> -1.5), 0
    becomes the dtype's tiny negative subnormal (float32: -5.9e-39), a finite value never
    becomes inf or NaN, and inf and NaN change bits too. Then up to SAMPLES elements per
    variable (spread evenly, first and last included) are read back and kept:
    :func:`unrestored` compares those samples only, bit for bit. `seed` is accepted for
    compatibility and unused: the perturbation is deterministic (and its own inverse: perturbing
    twice without a restore between gives back the original values).

    Residual risk: a restore that writes only elements outside the samples (a slice of a
    variable, say) is not caught by this check; the comparison of the restored model's outputs
    with the original's catches it, since every element was moved.
    """
    del seed
    tf = import_tensorflow()
    named = variables(model) if named is None else named
    result = Perturbation(model)
    if isinstance(model, GraphModel):
        chosen = {n: v for n, v in named.items() if _float_dtype(v) is not None}
        if chosen:
            _perturb_graph(tf, model, chosen, result)
        return result
    for name, v in named.items():
        var = tf_variable(v)
        dtype = _float_dtype(var)
        if dtype is None:
            continue
        shape = var.shape
        size = shape.num_elements() if shape.is_fully_defined() else int(tf.size(var))
        if not size:
            continue
        flipped = _flipped(tf, var.read_value(), dtype)
        var.assign(flipped, read_value=False)
        idx = sample_indices(size)
        result.marks[name] = np.asarray(tf.gather(tf.reshape(flipped, [-1]), idx).numpy())
        result._eager[name] = (var, idx)
    return result


def _perturb_graph(tf: Any, model: GraphModel, chosen: Mapping[str, Any],
                   result: Perturbation) -> None:
    """The same in a TF1 graph: ops built once, perturbing in one session run, sampling in one."""
    session = model.session
    with model.graph.as_default():
        unknown = [n for n, v in chosen.items() if not v.shape.is_fully_defined()]
        sizes = {n: v.shape.num_elements() for n, v in chosen.items() if n not in unknown}
        if unknown:
            got = session.run([tf.size(chosen[n]) for n in unknown])
            sizes.update({n: int(s) for n, s in zip(unknown, got, strict=True)})
        ops, reads = [], {}
        for name, var in chosen.items():
            if not sizes[name]:
                continue
            value = _flipped(tf, tf.identity(var), _float_dtype(var))
            ops.append(var.assign(value, read_value=False) if hasattr(var, "handle")
                       else tf.compat.v1.assign(var, value))
            reads[name] = tf.gather(tf.reshape(var, [-1]), sample_indices(sizes[name]))
        if not reads:
            return
        session.run(ops)
        got = session.run(list(reads.values()))
    result.marks.update({n: np.asarray(v) for n, v in zip(reads, got, strict=True)})
    result._graph.update(reads)


def unrestored(model: Any, perturbed: Mapping[str, np.ndarray]) -> list[str]:
    """Names of perturbed variables whose sampled elements all still hold their perturbed value.

    `perturbed` is what :func:`perturb` returned (a plain name -> full value mapping is compared
    whole). Only the SAMPLES sampled elements of each variable are read (see :func:`perturb`
    for what this cannot see).
    """
    if not isinstance(perturbed, Perturbation):
        now = read_values(model)
        return [n for n, v in perturbed.items()
                if n in now and _same_bits(now[n], np.asarray(v, now[n].dtype))]
    now = perturbed.samples()
    return [n for n, v in perturbed.marks.items() if _same_bits(now[n], v)]
