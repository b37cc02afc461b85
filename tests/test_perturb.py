"""The perturbation before a weights-only restore and the sampled check after it (models.perturb).

A restore goes into a fresh model whose float variables are moved first; afterwards a variable
whose sampled elements all still hold their perturbed values was not restored. Real TensorFlow
variables of the three model kinds, no mocks.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

from pytest_modelpersist._tf import import_tensorflow
from pytest_modelpersist.models import (
    SAMPLES,
    GraphModel,
    Perturbation,
    perturb,
    sample_indices,
    unrestored,
    variables,
)

import model_zoo

tf = import_tensorflow()

FLOAT_DTYPES = ["float16", "bfloat16", "float32", "float64"]
#: A large finite value per dtype (float16 tops out at 65504).
HUGE = {"float16": 6.0e4, "bfloat16": 1e30, "float32": 1e30, "float64": 1e30}


# ---- helpers: read and write the variables of any model kind ----------------------------


def values(model: Any) -> dict[str, np.ndarray]:
    named = variables(model)
    if isinstance(model, GraphModel):
        got = model.session.run(list(named.values()))
        return {n: np.array(v) for n, v in zip(named, got, strict=True)}
    return {n: np.array(v.numpy()) for n, v in named.items()}


def write(model: Any, saved: dict[str, np.ndarray], names: list[str]) -> None:
    """Put `saved` back into the named variables: a (partial) restore."""
    named = variables(model)
    if isinstance(model, GraphModel):
        model.load_values([(named[n], saved[n]) for n in names])
    else:
        for n in names:
            named[n].assign(saved[n])


def floats(model: Any) -> list[str]:
    return [n for n, v in values(model).items() if v.size and np.issubdtype(v.dtype, np.inexact)]


def bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def mixed_graph() -> GraphModel:
    """A TF1 graph with a resource and a ref float variable, an int and a bool one."""
    graph = tf.Graph()
    with graph.as_default():
        w = tf.compat.v1.Variable(np.arange(300, dtype=np.float32).reshape(30, 10), name="w",
                                  use_resource=True)
        r = tf.compat.v1.Variable(np.zeros((10,), np.float32), name="r", use_resource=False)
        tf.compat.v1.Variable(np.arange(4, dtype=np.int64), name="steps")
        tf.compat.v1.Variable([True, False], name="flags")
        x = tf.compat.v1.placeholder(tf.float32, [None, 30], name="x")
        y = tf.add(tf.matmul(x, w), r, name="y")
        init = tf.compat.v1.global_variables_initializer()
    session = tf.compat.v1.Session(graph=graph)
    session.run(init)
    return GraphModel(session, inputs=[x], outputs=[y])


class Mixed(tf.Module):
    """A tf.Module with float variables big and small, an int, a bool and an empty one."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(3)
        self.big = tf.Variable(rng.standard_normal((50, 40)).astype(np.float32))
        self.bias = tf.Variable(np.zeros((40,), np.float32))
        self.half = tf.Variable(rng.standard_normal((7, 30)).astype(np.float16))
        self.steps = tf.Variable(np.arange(5, dtype=np.int32))
        self.flag = tf.Variable(True)
        self.empty = tf.Variable(np.zeros((0, 3), np.float32))


MODELS = {
    "keras": lambda: model_zoo.randomize(model_zoo.functional()),
    "module": Mixed,
    "graph": mixed_graph,
}


@pytest.fixture(params=sorted(MODELS))
def model(request: pytest.FixtureRequest) -> Any:
    return MODELS[request.param]()


# ---- flagging what a restore left alone ------------------------------------------------


def test_nothing_restored_names_every_float_variable(model):
    marks = perturb(model)
    assert isinstance(marks, Perturbation)
    assert sorted(marks) == sorted(floats(model))
    assert sorted(unrestored(model, marks)) == sorted(floats(model))


def test_full_restore_names_none(model):
    saved = values(model)
    marks = perturb(model)
    write(model, saved, list(saved))
    assert unrestored(model, marks) == []


def test_one_variable_restored_names_the_others(model):
    saved = values(model)
    marks = perturb(model)
    one = floats(model)[0]
    write(model, saved, [one])
    assert sorted(unrestored(model, marks)) == sorted(n for n in floats(model) if n != one)


def test_only_float_nonempty_variables_are_perturbed_and_others_keep_values(model):
    before = values(model)
    perturb(model)
    after = values(model)
    for name, value in before.items():
        if value.size and np.issubdtype(value.dtype, np.inexact):
            assert not np.any(after[name] == value), f"{name}: some element did not move"
        else:  # int, bool, empty: untouched, bit for bit
            assert bits(after[name]) == bits(value), name


def test_variables_outside_named_are_not_perturbed(model):
    names = floats(model)
    chosen, rest = names[0], names[1:]
    before = values(model)
    marks = perturb(model, named={chosen: variables(model)[chosen]})
    after = values(model)
    assert list(marks) == [chosen]
    assert not np.any(after[chosen] == before[chosen])
    for name in rest:
        assert bits(after[name]) == bits(before[name]), name
    assert unrestored(model, marks) == [chosen]


def test_restore_writing_same_values_back_is_not_flagged_for_unsampled_change(model):
    """Only sampled elements are compared: restoring a sampled element alone counts."""
    saved = values(model)
    marks = perturb(model)
    name = floats(model)[0]
    var = variables(model)[name]
    idx = sample_indices(saved[name].size)[:1]
    partial = values(model)[name].ravel().copy()
    partial[idx] = saved[name].ravel()[idx]
    write(model, {name: partial.reshape(saved[name].shape)}, [name])
    assert name not in unrestored(model, marks), var


# ---- the perturbation changes every element, whatever the dtype or value ----------------


def dtype_module(dtype: str, value: np.ndarray) -> Any:
    module = tf.Module()
    module.v = tf.Variable(tf.cast(tf.constant(value, tf.float64), dtype))
    return module


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_every_sampled_element_changes_in_every_float_dtype(dtype):
    rng = np.random.default_rng(0)
    value = np.concatenate([
        rng.standard_normal(500) * 10.0 ** rng.integers(-8, 4, 500),  # wide spread of scales
        [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1e-7, -1e-7, HUGE[dtype], -HUGE[dtype]],
    ])
    module = dtype_module(dtype, value)
    before = module.v.numpy().astype(np.float64)
    marks = perturb(module)
    after = module.v.numpy().astype(np.float64)
    assert np.all(np.isfinite(after))
    assert not np.any(after == before), before[after == before]
    nonzero = before != 0
    assert np.all(np.sign(after[nonzero]) == -np.sign(before[nonzero]))  # a real move
    normal = np.abs(before) >= float(ml_dtypes.finfo(getattr(ml_dtypes, dtype, dtype)).tiny)
    ratio = np.abs(after[normal] / before[normal])  # (a subnormal moves further)
    assert np.all((ratio > 0.6) & (ratio < 1.6))
    sample = marks["v"].astype(np.float64)
    assert len(sample) == SAMPLES
    assert not np.any(sample == before[sample_indices(before.size)])
    assert unrestored(module, marks) == ["v"]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("kind", ["zero", "huge", "minus_huge", "one", "minus_one"])
def test_constant_values_change(dtype, kind):
    fill = {"zero": 0.0, "huge": HUGE[dtype], "minus_huge": -HUGE[dtype], "one": 1.0,
            "minus_one": -1.0}[kind]
    module = dtype_module(dtype, np.full((200,), fill))
    before = module.v.numpy().astype(np.float64)
    marks = perturb(module)
    after = module.v.numpy().astype(np.float64)
    assert np.all(np.isfinite(after)) and not np.any(after == before)
    assert unrestored(module, marks) == ["v"]
    module.v.assign(tf.cast(tf.constant(before), dtype))  # the restore puts them back
    assert unrestored(module, marks) == []


def test_extremes_stay_finite_and_inf_and_nan_change_bits():
    module = tf.Module()
    module.v = tf.Variable(np.array([3.4e38, -3.4e38, 1e-45, np.inf, -np.inf, np.nan, 1.0],
                                    np.float32))
    module.h = tf.Variable(np.array([6.5e4, -6.5e4, 6e-8, 1.0], np.float16))
    saved = {"v": module.v.numpy().copy(), "h": module.h.numpy().copy()}
    marks = perturb(module)
    assert np.all(np.isfinite(module.v.numpy()[:3])) and np.all(np.isfinite(module.h.numpy()))
    for name in ("v", "h"):
        now = getattr(module, name).numpy()
        assert all(bits(a) != bits(b) for a, b in zip(now, saved[name], strict=True)), name
    assert sorted(unrestored(module, marks)) == ["h", "v"]
    module.v.assign(saved["v"])
    module.h.assign(saved["h"])
    assert unrestored(module, marks) == []


def test_large_variable_keeps_only_samples():
    module = tf.Module()
    module.v = tf.Variable(np.zeros((1000, 1000), np.float32))
    marks = perturb(module)
    assert marks["v"].shape == (SAMPLES,)
    idx = sample_indices(10**6)
    assert idx[0] == 0 and idx[-1] == 10**6 - 1 and len(idx) == SAMPLES


def test_complex_variable_is_perturbed():
    module = tf.Module()
    module.c = tf.Variable(np.array([0, 1 + 1j, -1e30j], np.complex64))
    before = module.c.numpy().copy()
    marks = perturb(module)
    assert not np.any(module.c.numpy() == before)
    module.c.assign(before)
    assert unrestored(module, marks) == []
