"""The Keras layer on its own (no TensorFlow): Variables, the stateful classes,
their configs and serialization, hostile configs, and LossScaleOptimizer.

What TF-Keras itself says (configs, weights lists, trajectories) is checked in
``tests/oracle/test_keras_layer.py``; here the expected values come from small
NumPy re-derivations of Keras's formulas, from a second optimizer built with
the expected arguments, or from Keras's documented rules written out by hand.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from jaxopt_keras.mixed_precision import (
    LossScaleOptimizer,
    LossScaleState,
    loss_scale_optimizer,
    scale_loss,
    unscale_gradients,
)

ALGORITHMS = ("SGD", "Adam", "Adamax", "Nadam", "Adagrad", "Adadelta", "RMSprop", "Ftrl")
FAMILIES = {"legacy": O.legacy, "current": O}
ALL_CLASSES = [(f, n) for f in FAMILIES for n in ALGORITHMS]
ids = [f"{f}.{n}" for f, n in ALL_CLASSES]

X = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(4, 3)
Y = np.array([[0.5], [-0.25], [1.0], [0.0]], np.float32)


def make_vars(seed: int = 0):
    rng = np.random.default_rng(seed)
    return [
        jk.Variable(rng.standard_normal((3, 1)).astype(np.float32), name="dense/kernel"),
        jk.Variable(rng.standard_normal(1).astype(np.float32), name="dense/bias"),
    ]


def grads_at(k: int):
    """A deterministic gradient sequence for the two variables of make_vars."""
    return [np.full((3, 1), 0.3 * np.sin(k + 1.0), np.float32) + np.float32(0.05) * k, np.asarray([np.cos(k)], np.float32)]


def values(var_list):
    return [v.numpy() for v in var_list]


def first(state, cls):
    """The first ``cls`` node of a state (found by type, not by position)."""
    for leaf in jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, cls)):
        if isinstance(leaf, cls):
            return leaf
    raise AssertionError(f"no {cls.__name__} in state")


def with_hyperparams_of(state, other):
    """``state`` with every Hyperparams node taken from ``other`` (same layout)."""
    is_hp = lambda x: isinstance(x, jk.Hyperparams)  # noqa: E731
    return jax.tree_util.tree_map(lambda s, o: o if is_hp(s) else s, state, other, is_leaf=is_hp)


# ----------------------------------------------------------------------------
# Variable
# ----------------------------------------------------------------------------


def test_variable_reading():
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    v = jk.Variable(data, name="dense/kernel")
    assert v.name == "dense/kernel:0"
    assert jk.Variable(1.0).name == "Variable:0"  # TensorFlow's default name
    assert jk.Variable(1.0, name="w:0").name == "w:0"  # no second suffix
    assert v.shape == (2, 3) and isinstance(v.shape, tuple)
    assert v.dtype == np.float32
    assert isinstance(v.value, jax.Array)
    out = v.numpy()
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, data)
    out[0, 0] = 100.0  # a copy: the variable does not change
    assert float(v.value[0, 0]) == 0.0
    np.testing.assert_array_equal(np.asarray(v), data)
    assert np.asarray(v, dtype=np.float64).dtype == np.float64
    assert np.array(v).shape == (2, 3)
    # dtype: as given, or inferred (float32 / int32 without x64), or converted.
    assert jk.Variable([1, 2]).dtype == jax.dtypes.canonicalize_dtype(np.int64)
    assert jk.Variable([1, 2], dtype=jnp.float32).dtype == np.float32
    assert jk.Variable(np.ones(2, np.float16)).dtype == np.float16
    assert float(jk.Variable(2.5)) == 2.5 and int(jk.Variable(7)) == 7
    assert "dense/kernel:0" in repr(v)


def test_variable_arithmetic_stands_in_for_its_value():
    a = jk.Variable(np.array([1.0, 2.0, 4.0], np.float32), name="a")
    b = jk.Variable(np.array([2.0, 2.0, 2.0], np.float32), name="b")
    x, y = np.array([1.0, 2.0, 4.0], np.float32), np.full(3, 2.0, np.float32)
    for got, want in [
        (a + 1, x + 1),
        (1 + a, 1 + x),
        (a - b, x - y),
        (10 - a, 10 - x),
        (a * b, x * y),
        (3 * a, 3 * x),
        (a / b, x / y),
        (8 / a, 8 / x),
        (a**2, x**2),
        (-a, -x),
        (a @ b, x @ y),
        (a[1:], x[1:]),
        (a < b, x < y),
        (a >= b, x >= y),
        (x + a, x + x),
        (y @ a, y @ x),
        (jnp.asarray(a), x),
        (jnp.sum(a.value), x.sum()),
    ]:
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    # NumPy on the left defers to the Variable (JAX ops), so a Keras-style loss
    # mixing NumPy data and Variables can be differentiated.
    assert isinstance(y @ a, jax.Array) and isinstance(np.float32(2) * a, jax.Array)

    def loss(value):
        a._value = value  # what minimize does while it takes the gradient
        return (y @ a) * 1.0

    saved = a.value
    np.testing.assert_array_equal(np.asarray(jax.grad(loss)(saved)), y)
    a._value = saved


def test_variable_assign_keeps_shape_and_dtype():
    v = jk.Variable(np.zeros((2, 2), np.float32), name="v")
    assert v.assign(np.full((2, 2), 0.1, np.float64)) is v
    assert v.dtype == np.float32  # converted to the variable's dtype, never changed
    np.testing.assert_array_equal(v.numpy(), np.full((2, 2), np.float32(0.1)))
    v.assign([[1, 2], [3, 4]])  # Python ints into a float variable
    assert v.dtype == np.float32
    np.testing.assert_array_equal(v.numpy(), [[1.0, 2.0], [3.0, 4.0]])
    i = jk.Variable(np.array([1, 2], np.int32))
    i.assign(np.array([3.0, 4.0]))
    assert i.dtype == np.int32 and i.numpy().tolist() == [3, 4]
    with pytest.raises(ValueError, match=r"Shape mismatch.*\(2, 2\).*\(3,\)"):
        v.assign(np.zeros(3))
    with pytest.raises(ValueError, match="Shape mismatch"):
        v.assign(np.zeros((2, 2, 1)))
    np.testing.assert_array_equal(v.numpy(), [[1.0, 2.0], [3.0, 4.0]])  # unchanged by the failures
    v.assign_add(np.ones((2, 2)))
    v.assign_sub(np.full((2, 2), 0.5))
    np.testing.assert_array_equal(v.numpy(), [[1.5, 2.5], [3.5, 4.5]])
    w = jk.Variable(np.zeros((2, 2), np.float32))
    w.assign(v)  # a Variable is a value too
    np.testing.assert_array_equal(w.numpy(), v.numpy())


def test_variables_own_their_buffers():
    """The optimizer donates variable buffers; a caller's array, or two variables
    built from one array, must survive that (tf.Variable copies too)."""
    x = jnp.ones(3)
    v1, v2 = jk.Variable(x, name="v1"), jk.Variable(x, name="v2")
    v3 = jk.Variable(np.zeros(3, np.float32), name="v3")
    v3.assign(v1.value)
    opt = O.SGD(learning_rate=0.5)
    opt.apply_gradients([(jnp.ones(3), v1), (jnp.ones(3), v2), (jnp.ones(3), v3)])
    assert not x.is_deleted()
    np.testing.assert_array_equal(np.asarray(x), np.ones(3))
    for v in (v1, v2, v3):
        np.testing.assert_array_equal(v.numpy(), np.full(3, 0.5, np.float32))


# ----------------------------------------------------------------------------
# apply_gradients: in place, iterations, None gradients, one compiled step, donation
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_apply_gradients_updates_in_place_and_counts(family):
    mod = FAMILIES[family]
    w, b = make_vars()
    w0, b0 = values([w, b])
    opt = mod.SGD(learning_rate=0.1)
    expected_w, expected_b = w0.astype(np.float64), b0.astype(np.float64)
    for k in range(3):
        g = grads_at(k)
        it = opt.apply_gradients(zip(g, [w, b]))  # any iterable of pairs
        assert int(it.numpy()) == k + 1 == int(opt.iterations.numpy())
        expected_w, expected_b = expected_w - 0.1 * g[0], expected_b - 0.1 * g[1]
    np.testing.assert_allclose(w.numpy(), expected_w, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b.numpy(), expected_b, rtol=1e-6, atol=1e-7)
    name = "SGD/iter:0" if family == "legacy" else "iteration:0"
    assert opt.iterations.name == name
    assert opt.iterations.numpy().dtype == jax.dtypes.canonicalize_dtype(np.int64)  # int32 unless x64
    assert opt.apply_gradients([]) is not None and int(opt.iterations.numpy()) == 3  # nothing to do


@pytest.mark.parametrize("family", FAMILIES)
def test_none_gradients_leave_the_variable_and_its_slots_alone(family):
    w, b = make_vars()
    opt = FAMILIES[family].Adam(learning_rate=0.1)
    opt.apply_gradients(list(zip(grads_at(0), [w, b])))
    b_before = b.numpy()
    slots_before = {s: opt.get_slot(b, s).numpy() for s in opt.get_slot_names()}
    w_before = w.numpy()
    opt.apply_gradients([(grads_at(1)[0], w), (None, b)])
    assert int(opt.iterations.numpy()) == 2
    np.testing.assert_array_equal(b.numpy(), b_before)
    for s, before in slots_before.items():
        np.testing.assert_array_equal(opt.get_slot(b, s).numpy(), before)
    assert not np.array_equal(w.numpy(), w_before)
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        opt.apply_gradients([(None, w), (None, b)])
    assert int(opt.iterations.numpy()) == 2


def test_first_call_with_a_none_gradient_builds_per_family():
    """Legacy creates slots only for variables with gradients (it builds from the
    filtered list); the current family builds every variable it is given."""
    w, b = make_vars()
    legacy = O.legacy.SGD(momentum=0.9)
    legacy.apply_gradients([(grads_at(0)[0], w), (None, b)])
    assert [x.name for x in legacy.weights] == ["SGD/iter:0", "SGD/dense/kernel/momentum:0"]
    w, b = make_vars()
    current = O.SGD(momentum=0.9)
    current.apply_gradients([(grads_at(0)[0], w), (None, b)])
    assert [x.name for x in current.weights] == ["iteration:0", "SGD/m/dense/kernel:0", "SGD/m/dense/bias:0"]
    np.testing.assert_array_equal(current.get_weights()[2], np.zeros(1, np.float32))


@pytest.mark.parametrize("family", FAMILIES)
def test_one_compiled_step_reused_across_calls(family):
    mod = FAMILIES[family]
    w, b = make_vars()
    opt = mod.Adam(learning_rate=0.01)
    opt.apply_gradients(list(zip(grads_at(0), [w, b])))
    step = opt._step
    for k in range(1, 25):
        opt.apply_gradients(list(zip(grads_at(k), [w, b])))
    assert opt._step is step and step._cache_size() == 1
    # Hyperparameters are state: changing them is not a recompilation.
    opt.learning_rate = 0.05
    opt.beta_1 = 0.8
    opt.apply_gradients(list(zip(grads_at(25), [w, b])))
    assert opt._step is step and step._cache_size() == 1
    # A different pattern of None gradients is a different program ...
    opt.apply_gradients([(grads_at(26)[0], w), (None, b)])
    assert step._cache_size() == 2
    # ... compiled once too, and the first is still there.
    opt.apply_gradients([(grads_at(27)[0], w), (None, b)])
    opt.apply_gradients(list(zip(grads_at(28), [w, b])))
    assert step._cache_size() == 2
    # So is a different gradient dtype.
    opt.apply_gradients([(grads_at(29)[0].astype(jnp.bfloat16), w), (grads_at(29)[1], b)])
    assert step._cache_size() == 3
    assert w.dtype == np.float32
    assert int(opt.iterations.numpy()) == 30


def test_legacy_new_variable_compiles_the_same_step_once_more():
    """The transformation is built once; a new variable adds one compiled structure."""
    w, b = make_vars()
    opt = O.legacy.Adam()
    transformation = opt.transformation
    opt.apply_gradients([(grads_at(0)[0], w)])
    step = opt._step
    opt.apply_gradients(list(zip(grads_at(1), [w, b])))
    assert opt._step is step and opt.transformation is transformation
    assert step._cache_size() == 2
    for k in range(2, 6):
        opt.apply_gradients(list(zip(grads_at(k), [w, b])))
    assert step._cache_size() == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_buffers_are_donated(family):
    w, b = make_vars()
    opt = FAMILIES[family].Adam()
    opt.apply_gradients(list(zip(grads_at(0), [w, b])))
    w_array, slot_array = w.value, opt.get_slot(w, "m").value
    state_leaves = jax.tree_util.tree_leaves(opt.state)
    w_copy = w.numpy()
    g = [jnp.asarray(x) for x in grads_at(1)]
    opt.apply_gradients(list(zip(g, [w, b])))
    assert w_array.is_deleted() and slot_array.is_deleted()
    assert all(leaf.is_deleted() for leaf in state_leaves)
    assert not any(x.is_deleted() for x in g)  # gradients are not donated
    assert not np.array_equal(w.numpy(), w_copy)  # the variable holds the new buffer


# ----------------------------------------------------------------------------
# Hyperparameters as attributes
# ----------------------------------------------------------------------------

HYPER_CASES = [
    ("legacy", "SGD", dict(learning_rate=0.1, momentum=0.5), "learning_rate", 0.05),
    ("legacy", "SGD", dict(learning_rate=0.1, momentum=0.5), "momentum", 0.9),
    ("legacy", "SGD", dict(learning_rate=0.1, momentum=0.5), "decay", 0.1),
    ("legacy", "Adam", dict(learning_rate=0.1), "beta_1", 0.8),
    ("legacy", "Adam", dict(learning_rate=0.1), "epsilon", 1e-3),
    ("legacy", "Adam", dict(learning_rate=0.1, decay=0.01), "decay", 0.2),
    ("legacy", "RMSprop", dict(learning_rate=0.01), "rho", 0.5),
    ("legacy", "Adadelta", dict(learning_rate=1.0), "rho", 0.5),
    ("current", "SGD", dict(learning_rate=0.1, momentum=0.5), "learning_rate", 0.05),
    ("current", "SGD", dict(learning_rate=0.1, momentum=0.5), "momentum", 0.9),
    ("current", "Adam", dict(learning_rate=0.1), "beta_1", 0.8),
    ("current", "Adam", dict(learning_rate=0.1), "beta_2", 0.9),
    ("current", "Adam", dict(learning_rate=0.1), "epsilon", 1e-3),
    ("current", "RMSprop", dict(learning_rate=0.01), "rho", 0.5),
    ("current", "Adadelta", dict(learning_rate=1.0), "rho", 0.5),
    ("current", "Nadam", dict(learning_rate=0.01), "beta_1", 0.8),
]


@pytest.mark.parametrize("family,name,kwargs,attr,new", HYPER_CASES, ids=[f"{c[0]}.{c[1]}.{c[3]}" for c in HYPER_CASES])
def test_hyperparameter_attribute_takes_effect_without_recompiling(family, name, kwargs, attr, new):
    cls = getattr(FAMILIES[family], name)
    opt, vs = cls(**kwargs), make_vars()
    for k in range(3):
        opt.apply_gradients(list(zip(grads_at(k), vs)))
    step = opt._step
    start_values, start_state = values(vs), opt.state

    def continue_from_start(optimizer):
        """Same variables and state as `opt` now, hyperparameters of `optimizer`."""
        copies = [jk.Variable(x, name=v._shared_name) for x, v in zip(start_values, vs)]
        optimizer.build(copies)
        optimizer.state = with_hyperparams_of(start_state, optimizer.state)
        optimizer.apply_gradients(list(zip(grads_at(3), copies)))
        return values(copies)

    fresh_result = continue_from_start(cls(**{**kwargs, attr: new}))
    stale_result = continue_from_start(cls(**kwargs))

    setattr(opt, attr, new)
    read_back = float(np.asarray(getattr(opt, attr)))
    stored = float(np.float32(new)) if family == "legacy" or attr == "learning_rate" else new
    assert read_back == pytest.approx(stored, rel=1e-6)
    opt.apply_gradients(list(zip(grads_at(3), vs)))

    assert opt._step is step and step._cache_size() == 1, "setting a hyperparameter recompiled"
    for got, want, old in zip(values(vs), fresh_result, stale_result):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(a, b) for a, b in zip(fresh_result, stale_result)), "the change had no effect"
    assert opt.get_config()[attr] == pytest.approx(stored, rel=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_lr_alias_and_assign(family):
    opt = FAMILIES[family].SGD(learning_rate=0.1)
    v = jk.Variable(np.ones(2, np.float32))
    opt.lr = 0.25
    assert float(opt.learning_rate.numpy()) == float(opt.lr.numpy()) == 0.25
    opt.apply_gradients([(np.ones(2, np.float32), v)])
    np.testing.assert_array_equal(v.numpy(), np.full(2, 0.75, np.float32))
    opt.learning_rate.assign(0.5)  # Keras-style, on the variable
    opt.apply_gradients([(np.ones(2, np.float32), v)])
    np.testing.assert_array_equal(v.numpy(), np.full(2, 0.25, np.float32))
    assert opt.get_config()["learning_rate"] == 0.5


def test_current_schedule_learning_rate_is_not_settable_to_a_float():
    schedule = jk.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    opt = O.SGD(learning_rate=schedule)
    v = jk.Variable(np.ones(2, np.float32))
    for _ in range(3):
        opt.apply_gradients([(np.ones(2, np.float32), v)])
    # Reading it gives the schedule's value at the current step.
    assert float(opt.learning_rate.numpy()) == pytest.approx(0.1 * 0.5 ** (3 / 10), rel=1e-6)
    with pytest.raises(TypeError, match="hence its learning rate is not settable"):
        opt.learning_rate = 0.1
    with pytest.raises(TypeError, match="hence its learning rate is not settable"):
        opt.lr = 0.1
    assert opt.get_config()["learning_rate"]["class_name"] == "ExponentialDecay"
    # Another schedule may replace it (Keras allows that), and is used from the next step.
    opt.learning_rate = jk.schedules.PiecewiseConstantDecay([100], [0.5, 0.1])
    before = v.numpy()
    opt.apply_gradients([(np.ones(2, np.float32), v)])
    np.testing.assert_allclose(v.numpy(), before - 0.5, rtol=1e-6)
    assert opt.get_config()["learning_rate"]["class_name"] == "PiecewiseConstantDecay"


def test_legacy_schedule_learning_rate_can_be_replaced_by_a_float():
    schedule = jk.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    opt = O.legacy.SGD(learning_rate=schedule)
    v = jk.Variable(np.ones(2, np.float32))
    opt.apply_gradients([(np.ones(2, np.float32), v)])
    opt.learning_rate = 0.3  # OptimizerV2._set_hyper replaces a schedule
    assert opt.get_config()["learning_rate"] == np.float32(0.3)
    before = v.numpy()
    opt.apply_gradients([(np.ones(2, np.float32), v)])
    np.testing.assert_allclose(v.numpy(), before - np.float32(0.3), rtol=1e-6)
    opt.learning_rate = schedule  # and back
    assert opt.get_config()["learning_rate"]["class_name"] == "ExponentialDecay"


def test_static_attributes():
    w, b = make_vars()
    adam = O.Adam()
    adam.apply_gradients(list(zip(grads_at(0), [w, b])))
    with pytest.raises(ValueError, match="cannot change after the optimizer is built"):
        adam.amsgrad = True  # it would change the slots
    p = jk.Variable(np.zeros(2, np.float32))
    opt = O.legacy.SGD(learning_rate=1.0)
    opt.apply_gradients([(np.array([3.0, 4.0], np.float32), p)])
    np.testing.assert_allclose(p.numpy(), [-3.0, -4.0], rtol=1e-6)
    with pytest.raises(ValueError, match="clipnorm >= 0"):
        opt.clipnorm = -1.0
    opt.clipnorm = 0.5  # clipping is set after construction and used from the next step
    opt.apply_gradients([(np.array([3.0, 4.0], np.float32), p)])
    np.testing.assert_allclose(p.numpy(), [-3.3, -4.4], rtol=1e-6)  # the norm-5 gradient clipped to 0.5
    assert opt.get_config()["clipnorm"] == 0.5
    with pytest.raises(ValueError, match="Cannot accept both"):
        opt.global_clipnorm = 1.0
    assert opt.get_config()["clipnorm"] == 0.5 and "global_clipnorm" not in opt.get_config()
    # Current family, with a moving average kept across the change.
    q = jk.Variable(np.zeros(2, np.float32), name="q")
    ema = O.SGD(learning_rate=1.0, use_ema=True, ema_momentum=0.5)
    ema.apply_gradients([(np.array([3.0, 4.0], np.float32), q)])
    average = 0.5 * np.zeros(2) + 0.5 * q.numpy()
    ema.clipvalue = 1.0
    ema.apply_gradients([(np.array([3.0, -0.5], np.float32), q)])
    np.testing.assert_allclose(q.numpy(), [-4.0, -3.5], rtol=1e-6)
    np.testing.assert_allclose(ema.get_weights()[1], 0.5 * average + 0.5 * q.numpy(), rtol=1e-6)
    assert int(ema.iterations.numpy()) == 2


# ----------------------------------------------------------------------------
# minimize
# ----------------------------------------------------------------------------


def _loss_of_values(vals):
    return jnp.mean((X @ vals[0] + vals[1] - Y) ** 2)


@pytest.mark.parametrize("family", FAMILIES)
def test_minimize_matches_apply_gradients_with_jax_grad(family):
    cls = FAMILIES[family].Adam
    by_grad, by_vars, by_values = make_vars(), make_vars(), make_vars()
    o1, o2, o3 = cls(learning_rate=0.05), cls(learning_rate=0.05), cls(learning_rate=0.05)
    w, b = by_vars
    keras_style = lambda: jnp.mean((X @ w + b.value - Y) ** 2)  # noqa: E731 - reads the Variables
    for _ in range(4):
        expected_loss = _loss_of_values([v.value for v in by_grad])
        g = jax.grad(_loss_of_values)([v.value for v in by_grad])
        o1.apply_gradients(list(zip(g, by_grad)))
        loss2 = o2.minimize(keras_style, by_vars)
        loss3 = o3.minimize(_loss_of_values, by_values)
        assert float(loss2) == float(loss3) == float(expected_loss)
    for a, b_, c in zip(values(by_grad), values(by_vars), values(by_values)):
        np.testing.assert_array_equal(a, b_)
        np.testing.assert_array_equal(a, c)
    assert not isinstance(w.value, jax.core.Tracer)  # the variables hold arrays again
    assert int(o2.iterations.numpy()) == 4


def test_minimize_refuses_a_tensor_loss():
    with pytest.raises(ValueError, match="callable"):
        O.SGD().minimize(jnp.asarray(1.0), make_vars())


# ----------------------------------------------------------------------------
# Building: legacy adds slots on the fly; current refuses unknown variables
# ----------------------------------------------------------------------------


def test_legacy_adds_slots_for_new_variables_in_optimizer_v2_order():
    """OptimizerV2._create_slots loops over the variables once per slot kind and
    only creates the missing slots, appending each to the weights list: a second
    build batch adds its m's, then its v's, after everything already there."""
    a = jk.Variable(np.ones(3, np.float32), name="a")
    b = jk.Variable(np.ones(2, np.float32), name="b")
    c = jk.Variable(np.ones(1, np.float32), name="c")
    opt = O.legacy.Adam(learning_rate=0.1)
    opt.apply_gradients([(np.ones(3, np.float32), a)])
    assert [w.name for w in opt.weights] == ["Adam/iter:0", "Adam/a/m:0", "Adam/a/v:0"]
    a_after_one = a.numpy()
    g_b, g_c = np.array([0.5, -2.0], np.float32), np.array([3.0], np.float32)
    opt.apply_gradients([(g_b, b), (np.ones(3, np.float32), a), (g_c, c)])
    assert [w.name for w in opt.weights] == [
        "Adam/iter:0",
        "Adam/a/m:0",
        "Adam/a/v:0",
        "Adam/b/m:0",
        "Adam/c/m:0",
        "Adam/b/v:0",
        "Adam/c/v:0",
    ]
    assert int(opt.iterations.numpy()) == 2
    # The new variables start from fresh slots, at the shared step count (t = 2).
    for var, g in ((b, g_b), (c, g_c)):
        m, v = 0.1 * g.astype(np.float64), 0.001 * g.astype(np.float64) ** 2
        lr_t = 0.1 * np.sqrt(1 - 0.999**2) / (1 - 0.9**2)
        np.testing.assert_allclose(opt.get_slot(var, "m").numpy(), m, rtol=1e-6)
        np.testing.assert_allclose(var.numpy(), 1.0 - lr_t * m / (np.sqrt(v) + 1e-7), rtol=1e-5)
    assert not np.array_equal(a.numpy(), a_after_one)
    ws = opt.get_weights()
    assert [x.shape for x in ws] == [(), (3,), (3,), (2,), (1,), (2,), (1,)]


def test_current_refuses_a_variable_it_was_not_built_with():
    a, b = make_vars()
    opt = O.Adam()
    opt.apply_gradients([(grads_at(0)[0], a)])
    a_before, state_before = a.numpy(), opt.get_weights()
    with pytest.raises(KeyError) as e:
        opt.apply_gradients(list(zip(grads_at(1), [a, b])))
    assert e.value.args[0].startswith(
        "The optimizer cannot recognize variable dense/bias:0. This usually means you are trying to call "
        "the optimizer to update different parts of the model separately. Please call "
        "`optimizer.build(variables)` with the full list of trainable variables before the training loop "
        "or use legacy optimizer `"
    )
    np.testing.assert_array_equal(a.numpy(), a_before)  # nothing happened
    for x, y in zip(opt.get_weights(), state_before):
        np.testing.assert_array_equal(x, y)
    opt.build([a, b])  # already built: a no-op, as in Keras
    assert len(opt.get_weights()) == 3


def test_build_refuses_plain_arrays():
    with pytest.raises(TypeError, match="jaxopt_keras.Variable"):
        O.Adam().build([jnp.ones(3)])


# ----------------------------------------------------------------------------
# Weight decay exclusions, EMA
# ----------------------------------------------------------------------------


def test_exclude_from_weight_decay_by_list_and_by_name():
    kernel = jk.Variable(np.full(3, 2.0, np.float32), name="dense/kernel")
    bias = jk.Variable(np.full(3, 2.0, np.float32), name="dense/bias")
    emb = jk.Variable(np.full(3, 2.0, np.float32), name="embedding/table")
    opt = O.SGD(learning_rate=0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_list=[emb], var_names=["bias", "nothing"])
    zero = np.zeros(3, np.float32)
    opt.apply_gradients([(zero, kernel), (zero, bias), (zero, emb)])
    # Keras: variable -= variable * weight_decay * learning_rate, then the (zero) step.
    np.testing.assert_allclose(kernel.numpy(), 2.0 - 2.0 * 0.5 * 0.1, rtol=1e-6)
    np.testing.assert_array_equal(bias.numpy(), np.full(3, 2.0, np.float32))
    np.testing.assert_array_equal(emb.numpy(), np.full(3, 2.0, np.float32))
    with pytest.raises(ValueError, match=r"`exclude_from_weight_decay\(\)` can only be configued before the optimizer is built"):
        opt.exclude_from_weight_decay(var_names=["kernel"])


def test_finalize_variable_values_with_ema():
    p = jk.Variable(np.ones(3, np.float32), name="p")
    opt = O.SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.5)
    average = np.ones(3)  # Keras starts the average at the variable's value
    for _ in range(3):
        opt.apply_gradients([(np.ones(3, np.float32), p)])
        average = 0.5 * average + 0.5 * p.numpy()
    np.testing.assert_allclose(p.numpy(), 1.0 - 0.3, rtol=1e-6)
    assert [w.name for w in opt.weights] == ["iteration:0", "SGD/average/p:0", "SGD/m/p:0"]
    np.testing.assert_allclose(opt.get_weights()[1], average, rtol=1e-6)
    opt.finalize_variable_values([p])
    np.testing.assert_allclose(p.numpy(), average, rtol=1e-6)
    # Without use_ema it does nothing.
    q = jk.Variable(np.ones(3, np.float32))
    plain = O.SGD(learning_rate=0.1)
    plain.apply_gradients([(np.ones(3, np.float32), q)])
    plain.finalize_variable_values([q])
    np.testing.assert_allclose(q.numpy(), 0.9, rtol=1e-6)


# ----------------------------------------------------------------------------
# The pure path: opt.transformation and opt.state
# ----------------------------------------------------------------------------


def _numpy_current_adam(params, grads_seq, lr=0.05, b1=0.9, b2=0.999, eps=1e-7):
    """tf.keras.optimizers.Adam.update_step, in float64."""
    ps = [np.asarray(p, np.float64) for p in params]
    ms = [np.zeros_like(p) for p in ps]
    vs = [np.zeros_like(p) for p in ps]
    for t, grads in enumerate(grads_seq, start=1):
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        for i, g in enumerate(grads):
            ms[i] += (g - ms[i]) * (1 - b1)
            vs[i] += (np.square(g) - vs[i]) * (1 - b2)
            ps[i] -= ms[i] * alpha / (np.sqrt(vs[i]) + eps)
    return ps, ms, vs


def test_functional_loop_over_transformation_and_state():
    vs = make_vars()
    opt = O.Adam(learning_rate=0.05)
    opt.build(vs)
    start = values(vs)
    tx, state = opt.transformation, opt.state
    params = [v.value for v in vs]

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return jk.apply_updates(params, updates), state

    for k in range(3):
        params, state = step(params, state, [jnp.asarray(g) for g in grads_at(k)])
    opt.state = state
    for v, p in zip(vs, params):
        v.assign(p)

    want_p, want_m, want_v = _numpy_current_adam(start, [grads_at(k) for k in range(3)])
    weights = opt.get_weights()
    assert [w.name for w in opt.weights] == [
        "iteration:0",
        "m/dense/kernel:0",
        "v/dense/kernel:0",
        "m/dense/bias:0",
        "v/dense/bias:0",
    ]
    assert int(weights[0]) == 3 and int(opt.iterations.numpy()) == 3
    np.testing.assert_allclose(weights[1], want_m[0], rtol=1e-5)
    np.testing.assert_allclose(weights[2], want_v[0], rtol=1e-5)
    np.testing.assert_allclose(weights[3], want_m[1], rtol=1e-5)
    np.testing.assert_allclose(weights[4], want_v[1], rtol=1e-5)
    for v, p in zip(vs, want_p):
        np.testing.assert_allclose(v.numpy(), p, rtol=1e-5, atol=2e-6)  # each step moves ~0.05
    # The stateful object continues where the functional loop stopped.
    params, state = step(params, state, [jnp.asarray(g) for g in grads_at(3)])
    opt.apply_gradients(list(zip(grads_at(3), vs)))
    for v, p in zip(vs, params):
        np.testing.assert_array_equal(v.numpy(), np.asarray(p))


def test_setting_a_malformed_state_changes_nothing():
    vs = make_vars()
    opt = O.Adam()
    with pytest.raises(ValueError, match="structure"):  # before build, the state is over no variables
        opt.state = ()
    opt.apply_gradients(list(zip(grads_at(0), vs)))
    before = opt.get_weights()
    good = opt.state
    with pytest.raises(ValueError, match="structure"):
        opt.state = (good, None)
    with pytest.raises(ValueError, match="structure"):
        opt.state = jax.tree_util.tree_map(lambda x: x, good, is_leaf=lambda x: isinstance(x, list))[:-1] or ()
    wrong_shape = jax.tree_util.tree_map(lambda x: jnp.zeros((7,) + x.shape, x.dtype) if x.ndim == 2 else x, good)
    with pytest.raises(ValueError, match="shape"):
        opt.state = wrong_shape
    for a, b in zip(opt.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    opt.apply_gradients(list(zip(grads_at(1), vs)))  # still usable
    assert int(opt.iterations.numpy()) == 2


def test_state_setter_copies_so_shared_leaves_are_safe():
    vs = make_vars()
    opt = O.Adam()
    opt.apply_gradients(list(zip(grads_at(0), vs)))
    zeros = jnp.zeros((3, 1))
    shared = jax.tree_util.tree_map(lambda x: zeros if x.shape == (3, 1) else x, opt.state)
    opt.state = shared  # the same buffer for m and v: must not be donated twice
    opt.apply_gradients(list(zip(grads_at(1), vs)))
    assert not zeros.is_deleted()


# ----------------------------------------------------------------------------
# Slots
# ----------------------------------------------------------------------------

SLOT_NAMES = [
    ("legacy", "SGD", {}, []),
    ("legacy", "SGD", dict(momentum=0.9), ["momentum"]),
    ("legacy", "Adam", {}, ["m", "v"]),
    ("legacy", "Adam", dict(amsgrad=True), ["m", "v", "vhat"]),
    ("legacy", "Adamax", {}, ["m", "v"]),
    ("legacy", "Nadam", {}, ["m", "v"]),
    ("legacy", "Adagrad", {}, ["accumulator"]),
    ("legacy", "Adadelta", {}, ["accum_grad", "accum_var"]),
    ("legacy", "RMSprop", {}, ["rms"]),
    ("legacy", "RMSprop", dict(momentum=0.5, centered=True), ["rms", "momentum", "mg"]),
    ("legacy", "Ftrl", {}, ["accumulator", "linear"]),
    ("current", "SGD", {}, ["m"]),
    ("current", "Adam", dict(amsgrad=True), ["m", "v", "vhat"]),
    ("current", "Adamax", {}, ["m", "u"]),
    ("current", "Nadam", {}, ["m", "v"]),
    ("current", "Adagrad", {}, ["accumulator"]),
    ("current", "Adadelta", {}, ["accumulated_grad", "accumulated_delta_var"]),
    ("current", "RMSprop", dict(momentum=0.5, centered=True), ["velocity", "momentum", "average_gradient"]),
    ("current", "Ftrl", {}, ["accumulator", "linear"]),
]


@pytest.mark.parametrize("family,name,kwargs,slots", SLOT_NAMES, ids=[f"{c[0]}.{c[1]}{c[2]}" for c in SLOT_NAMES])
def test_get_slot_names_and_get_slot(family, name, kwargs, slots):
    opt = getattr(FAMILIES[family], name)(**kwargs)
    vs = make_vars()
    for k in range(2):
        opt.apply_gradients(list(zip(grads_at(k), vs)))
    assert opt.get_slot_names() == slots
    by_name = {w.name: w.numpy() for w in opt.weights}
    for var in vs:
        for slot in slots:
            view = opt.get_slot(var, slot)
            assert view.shape == var.shape
            # get_slot reads the entry of the weights list with Keras's slot name.
            np.testing.assert_array_equal(view.numpy(), by_name[view.name])
    with pytest.raises(KeyError):
        opt.get_slot(vs[0], "no_such_slot")
    with pytest.raises(KeyError):
        opt.get_slot(jk.Variable(np.ones((3, 1), np.float32)), slots[0] if slots else "m")


def test_get_slot_assign_writes_the_state():
    w = jk.Variable(np.ones(2, np.float32), name="w")
    opt = O.legacy.SGD(learning_rate=0.1, momentum=0.5)
    opt.apply_gradients([(np.ones(2, np.float32), w)])
    opt.get_slot(w, "momentum").assign(np.array([1.0, -1.0], np.float32))
    np.testing.assert_array_equal(opt.get_weights()[1], [1.0, -1.0])
    before = w.numpy()
    opt.apply_gradients([(np.zeros(2, np.float32), w)])
    # Keras's momentum SGD: accum = momentum * accum - lr * g; var += accum.
    np.testing.assert_allclose(w.numpy(), before + 0.5 * np.array([1.0, -1.0]), rtol=1e-6)


# ----------------------------------------------------------------------------
# Config round trips
# ----------------------------------------------------------------------------

NON_DEFAULT = {
    "SGD": dict(learning_rate=0.2, momentum=0.7, nesterov=True),
    "Adam": dict(learning_rate=0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-5, amsgrad=True),
    "Adamax": dict(learning_rate=0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-5),
    "Nadam": dict(learning_rate=0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-5),
    "Adagrad": dict(learning_rate=0.02, initial_accumulator_value=0.3, epsilon=1e-5),
    "Adadelta": dict(learning_rate=0.5, rho=0.8, epsilon=1e-5),
    "RMSprop": dict(learning_rate=0.02, rho=0.8, momentum=0.3, epsilon=1e-5, centered=True),
    "Ftrl": dict(
        learning_rate=0.02,
        learning_rate_power=-0.7,
        initial_accumulator_value=0.2,
        l1_regularization_strength=0.01,
        l2_regularization_strength=0.02,
        l2_shrinkage_regularization_strength=0.03,
        beta=0.1,
    ),
}
FAMILY_EXTRA = {
    "legacy": dict(name="opt", clipvalue=0.5, global_clipnorm=2.0, decay=0.01),
    "current": dict(name="opt", weight_decay=0.01, clipnorm=1.0, clipvalue=0.5, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=7),
}


@pytest.mark.parametrize("family,name", ALL_CLASSES, ids=ids)
def test_get_config_from_config_round_trip_for_every_class(family, name):
    cls = getattr(FAMILIES[family], name)
    kwargs = {**NON_DEFAULT[name], **FAMILY_EXTRA[family]}
    if family == "legacy" and name == "Nadam":
        # OptimizerV2's Nadam overwrites `decay` with `schedule_decay` (0.004 by
        # default) and lists that under "decay" in its config.
        kwargs["schedule_decay"] = kwargs.pop("decay")
    opt = cls(**kwargs)
    if "schedule_decay" in kwargs:
        assert opt.get_config()["decay"] == kwargs.pop("schedule_decay")
    config = opt.get_config()
    for key, value in kwargs.items():
        if isinstance(value, float):
            assert config[key] == pytest.approx(value, rel=1e-7), key  # learning rates are float32 variables
        else:
            assert config[key] == value, key
    if family == "current":
        assert config["is_legacy_optimizer"] is False
    rebuilt = cls.from_config(config)
    assert type(rebuilt) is cls and rebuilt.get_config() == config
    # After training (legacy hyperparameters then read back from their float32
    # variables) the round trip still holds.
    opt.apply_gradients(list(zip(grads_at(0), make_vars())))
    config = opt.get_config()
    assert cls.from_config(config).get_config() == config
    # Through serialize/deserialize and JSON, both formats.
    for legacy_format in (False, True):
        blob = json.loads(json.dumps(O.serialize(opt, use_legacy_format=legacy_format)))
        back = O.deserialize(blob)
        assert type(back) is cls and back.get_config() == config


def test_every_registered_class_round_trips_with_its_defaults():
    """Whatever classes the registries hold (new ones included)."""
    from jaxopt_keras.optimizers.classes import classes

    for cls in [*classes("legacy").values(), *classes("current").values()]:
        config = cls().get_config()
        assert cls.from_config(config).get_config() == config, cls
        back = O.deserialize(json.loads(json.dumps(O.serialize(cls()))))
        assert type(back) is cls and back.get_config() == config, cls


names = st.sampled_from(["opt", "Adam", "my_optimizer", "x"])
unit = st.floats(0.0, 1.0)
small_positive = st.floats(1e-6, 1.0)
epsilons = st.floats(1e-10, 1e-2)


def _schedules():
    lr = st.floats(1e-4, 1.0)
    steps = st.integers(1, 10_000)
    return st.one_of(
        st.builds(jk.schedules.ExponentialDecay, lr, steps, st.floats(0.1, 1.0), st.booleans()),
        st.builds(jk.schedules.InverseTimeDecay, lr, steps, st.floats(0.0, 2.0), st.booleans()),
        st.builds(jk.schedules.CosineDecay, lr, steps, alpha=unit),
        st.builds(jk.schedules.PolynomialDecay, lr, steps, end_learning_rate=st.floats(0.0, 1e-4), power=st.floats(0.5, 2.0), cycle=st.booleans()),
        st.integers(0, 3).flatmap(
            lambda n: st.tuples(
                st.lists(st.integers(1, 1000), min_size=n, max_size=n, unique=True).map(sorted),
                st.lists(lr, min_size=n + 1, max_size=n + 1),
            ).map(lambda bv: jk.schedules.PiecewiseConstantDecay(bv[0], bv[1]))
        ),
    )


ALGORITHM_ARGS = {
    "SGD": dict(momentum=unit, nesterov=st.booleans()),
    "Adam": dict(beta_1=unit, beta_2=unit, epsilon=epsilons, amsgrad=st.booleans()),
    "Adamax": dict(beta_1=unit, beta_2=unit, epsilon=epsilons),
    "Nadam": dict(beta_1=unit, beta_2=unit, epsilon=epsilons),
    "Adagrad": dict(initial_accumulator_value=unit, epsilon=epsilons),
    "Adadelta": dict(rho=unit, epsilon=epsilons),
    "RMSprop": dict(rho=unit, momentum=unit, epsilon=epsilons, centered=st.booleans()),
    "Ftrl": dict(
        learning_rate_power=st.floats(-2.0, 0.0),
        initial_accumulator_value=unit,
        l1_regularization_strength=unit,
        l2_regularization_strength=unit,
        l2_shrinkage_regularization_strength=unit,
        beta=unit,
    ),
}
CLIPPING = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"clipnorm": small_positive}),
    st.fixed_dictionaries({"global_clipnorm": small_positive}),
).flatmap(lambda d: st.fixed_dictionaries({k: st.just(v) for k, v in d.items()}, optional={"clipvalue": small_positive}))
FAMILY_ARGS = {
    "legacy": dict(decay=st.floats(0.0, 0.1), name=names),
    "current": dict(
        weight_decay=st.one_of(st.none(), st.floats(0.0, 0.1)),
        use_ema=st.booleans(),
        ema_momentum=unit,
        ema_overwrite_frequency=st.one_of(st.none(), st.integers(1, 100)),
        jit_compile=st.booleans(),
        name=names,
    ),
}


@st.composite
def optimizers(draw):
    family, name = draw(st.sampled_from(ALL_CLASSES))
    kwargs = draw(st.fixed_dictionaries({}, optional={**ALGORITHM_ARGS[name], **FAMILY_ARGS[family]}))
    kwargs.update(draw(CLIPPING))
    if family == "legacy" and name == "Nadam":
        kwargs.pop("decay", None)  # OptimizerV2's Nadam replaces it by schedule_decay
        kwargs["schedule_decay"] = draw(st.floats(0.0, 0.01))
        lr = draw(small_positive)  # OptimizerV2's Nadam refuses schedules
    else:
        lr = draw(st.one_of(small_positive, _schedules()))
    kwargs["learning_rate"] = lr
    return family, name, kwargs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(optimizers())
def test_config_round_trip_property(case):
    family, name, kwargs = case
    cls = getattr(FAMILIES[family], name)
    opt = cls(**kwargs)
    config = opt.get_config()
    assert cls.from_config(config).get_config() == config
    lr = kwargs["learning_rate"]
    if isinstance(lr, jk.schedules.LearningRateSchedule):
        assert config["learning_rate"]["config"] == lr.get_config()
    else:
        assert config["learning_rate"] == pytest.approx(lr, rel=1e-7)
    for legacy_format in (False, True):
        blob = O.serialize(opt, use_legacy_format=legacy_format)
        for b in (blob, json.loads(json.dumps(blob))):
            back = O.deserialize(b)
            assert type(back) is cls
            assert back.get_config() == config


# ----------------------------------------------------------------------------
# deserialize / get
# ----------------------------------------------------------------------------


def test_get_accepts_names_in_any_case_dicts_and_instances():
    for name in ("adam", "ADAM", "Adam", "aDaM"):
        assert type(O.get(name)) is O.Adam
    assert type(O.get("rmsprop")) is O.RMSprop and type(O.get("RMSprop")) is O.RMSprop
    assert type(O.get("RMSProp", use_legacy_optimizer=True)) is O.legacy.RMSprop
    assert type(O.get("sgd", use_legacy_optimizer=True)) is O.legacy.SGD
    for instance in (O.SGD(), O.legacy.Ftrl(), LossScaleOptimizer(O.Adam())):
        assert O.get(instance) is instance
    opt = O.get({"class_name": "nadam", "config": {"learning_rate": 0.5}})
    assert type(opt) is O.Nadam and float(opt.learning_rate.numpy()) == 0.5
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier"):
        O.get(3)
    with pytest.raises(ValueError, match="class_name"):
        O.get("adamx")


FAMILY_RULES = [
    # (config, use_legacy_optimizer, expected class)
    ({"module": "keras.optimizers.legacy", "class_name": "Adam", "config": {"learning_rate": 0.1}}, None, O.legacy.Adam),
    ({"module": "keras.optimizers", "class_name": "Adam", "config": {"learning_rate": 0.1}}, None, O.Adam),
    ({"class_name": "Adam", "config": {"learning_rate": 0.1}}, None, O.Adam),
    ({"class_name": "Adam", "config": {"learning_rate": 0.1, "is_legacy_optimizer": True}}, None, O.legacy.Adam),
    ({"class_name": "Adam", "config": {"learning_rate": 0.1, "is_legacy_optimizer": False}}, None, O.Adam),
    ({"class_name": "Adam", "config": {"learning_rate": 0.1, "decay": 0.0}}, None, O.legacy.Adam),
    ({"class_name": "SGD", "config": {"lr": 0.1}}, None, O.legacy.SGD),
    ({"class_name": "Nadam", "config": {"schedule_decay": 0.004}}, None, O.legacy.Nadam),
    ({"class_name": "Adam", "config": {"learning_rate": 0.1}}, True, O.legacy.Adam),
    ({"module": "keras.optimizers.legacy", "class_name": "SGD", "config": {"momentum": 0.5}}, False, O.SGD),
    ({"class_name": "Custom>Adam", "config": {"is_legacy_optimizer": False}}, None, O.Adam),
    ({"class_name": "Adam", "config": {"amsgrad": True}}, None, O.Adam),
]


@pytest.mark.parametrize("config,use_legacy,expected", FAMILY_RULES)
def test_the_config_chooses_the_family(config, use_legacy, expected):
    opt = O.deserialize(config, use_legacy_optimizer=use_legacy) if use_legacy is not None else O.deserialize(config)
    assert type(opt) is expected


def test_tf1_and_keras3_configs():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        opt = O.deserialize({"class_name": "Adadelta", "config": {"lr": 0.5, "rho": 0.9, "decay": 0.01}})
    assert type(opt) is O.legacy.Adadelta
    assert opt.get_config()["learning_rate"] == 0.5 and opt.get_config()["decay"] == 0.01
    keras3 = {
        "module": "keras.optimizers",
        "class_name": "Adam",
        "config": {
            "name": "adam",
            "learning_rate": 0.02,
            "weight_decay": None,
            "clipnorm": None,
            "global_clipnorm": None,
            "clipvalue": None,
            "use_ema": False,
            "ema_momentum": 0.99,
            "ema_overwrite_frequency": None,
            "loss_scale_factor": None,
            "gradient_accumulation_steps": None,
            "beta_1": 0.8,
            "beta_2": 0.999,
            "epsilon": 1e-07,
            "amsgrad": False,
        },
        "registered_name": None,
    }
    opt = O.deserialize(keras3)
    assert type(opt) is O.keras3.Adam and opt.name == "adam" and opt.beta_1 == 0.8
    assert float(opt.learning_rate.numpy()) == np.float32(0.02)


class ScaledSGD(O.SGD):
    """A user subclass with an argument of its own."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def get_config(self):
        return dict(super().get_config(), factor=self.factor)


def test_custom_objects_for_a_user_subclass():
    opt = ScaledSGD(factor=3.0, learning_rate=0.2, momentum=0.5)
    blob = O.serialize(opt)
    # As TF-Keras writes an unregistered class: its own module and name.
    assert blob["class_name"] == "ScaledSGD" and blob["registered_name"] == "ScaledSGD"
    assert blob["module"] == ScaledSGD.__module__
    with pytest.raises(ValueError, match="'module'"):
        O.deserialize(blob)  # not ours, not in custom_objects: refused
    back = O.deserialize(blob, custom_objects={"ScaledSGD": ScaledSGD})
    assert type(back) is ScaledSGD and back.factor == 3.0 and back.get_config() == opt.get_config()
    legacy_blob = O.serialize(opt, use_legacy_format=True)
    assert legacy_blob["class_name"] == "ScaledSGD"
    assert type(O.deserialize(legacy_blob, custom_objects={"ScaledSGD": ScaledSGD})) is ScaledSGD
    # A custom schedule class, nested in a config, resolves through custom_objects too.

    class Halving(jk.schedules.LearningRateSchedule):
        def __init__(self, start):
            self.start = start

        def __call__(self, step):
            return self.start * 0.5 ** jnp.asarray(step, jnp.float32)

        def get_config(self):
            return {"start": self.start}

    blob = O.serialize(O.SGD(learning_rate=Halving(0.4)))
    assert blob["config"]["learning_rate"]["class_name"] == "Halving"
    with pytest.raises(ValueError):
        O.deserialize(blob)
    opt = O.deserialize(blob, custom_objects={"Halving": Halving})
    v = jk.Variable(np.ones(1, np.float32))
    opt.apply_gradients([(np.ones(1, np.float32), v)])
    opt.apply_gradients([(np.ones(1, np.float32), v)])
    np.testing.assert_allclose(v.numpy(), 1.0 - 0.4 - 0.2, rtol=1e-6)


def test_deserialize_rejects_other_keywords():
    with pytest.raises(TypeError):
        O.deserialize({"class_name": "Adam", "config": {}}, bogus=True)


# ----------------------------------------------------------------------------
# Hostile configs: rejected, naming the field, with nothing imported or run
# ----------------------------------------------------------------------------

HOSTILE_MODULES = {"os", "subprocess", "builtins", "importlib", "posix", "shutil", "pickle", "marshal", "ctypes", "evil"}


@pytest.fixture
def tripwire(monkeypatch, tmp_path):
    """Records (and neuters) every way a config could run or import something."""
    O.deserialize({"class_name": "Adam", "config": {"learning_rate": {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.5}}}})
    calls: list = []
    loaded = set(sys.modules)
    real_import, real_import_module = builtins.__import__, importlib.import_module

    def spy_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and (name.split(".")[0] in HOSTILE_MODULES or name not in loaded):
            calls.append(("__import__", name))
        return real_import(name, globals, locals, fromlist, level)

    def spy_import_module(name, package=None):
        calls.append(("import_module", name))
        return real_import_module(name, package)

    def record(what):
        def f(*args, **kwargs):
            calls.append((what, args))
            return 0

        return f

    monkeypatch.setattr(builtins, "__import__", spy_import)
    monkeypatch.setattr(importlib, "import_module", spy_import_module)
    monkeypatch.setattr(os, "system", record("os.system"))
    monkeypatch.setattr(os, "popen", record("os.popen"))
    monkeypatch.setattr(subprocess, "Popen", record("subprocess.Popen"))
    monkeypatch.setattr(subprocess, "run", record("subprocess.run"))
    monkeypatch.setattr(builtins, "eval", record("eval"))
    monkeypatch.setattr(builtins, "exec", record("exec"))
    canary = tmp_path / "pwned"
    yield calls, canary
    assert not canary.exists()


def _hostile(canary):
    cmd = f"touch {canary}"
    lr_ok = {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay"}
    return [
        ({"class_name": "os.system", "config": {"command": cmd}}, "'class_name'"),
        ({"class_name": "subprocess.Popen", "config": {"args": cmd, "shell": True}}, "'class_name'"),
        ({"module": "subprocess", "class_name": "Popen", "config": {"args": cmd}}, "'module'"),
        ({"module": "os", "class_name": "system", "config": {"command": cmd}}, "'module'"),
        ({"module": "os", "class_name": "Adam", "config": {}}, "'module'"),
        ({"module": "builtins", "class_name": "exec", "config": {"source": f"import os; os.system({cmd!r})"}}, "'module'"),
        ({"module": "keras.optimizers", "class_name": "Adam", "config": {}, "registered_name": "os.system"}, "'registered_name'"),
        ({"module": "keras.optimizers", "class_name": "Adam", "config": {}, "registered_name": "SGD"}, "'registered_name'"),
        ({"class_name": "Custom>os.system", "config": {"command": cmd}}, "'class_name'"),
        ({"class_name": "__import__", "config": {"name": "os"}}, "'class_name'"),
        (
            {"class_name": "Adam", "config": {"learning_rate": {"module": "os", "class_name": "system", "config": {"command": cmd}}}},
            "'module'",
        ),
        (
            {"class_name": "SGD", "config": {"decay": 0.0, "learning_rate": {"class_name": "subprocess.Popen", "config": {"args": cmd}}}},
            "'class_name'",
        ),
        (
            {"class_name": "Adam", "config": {"learning_rate": dict(lr_ok, config={"initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.5, "__class__": cmd})}},
            "'config'",
        ),
        (
            {"class_name": "Adam", "config": {"learning_rate": dict(lr_ok, registered_name="os.system", config={})}},
            "'registered_name'",
        ),
        (
            {"class_name": "LossScaleOptimizer", "config": {"inner_optimizer": {"module": "subprocess", "class_name": "Popen", "config": {"args": cmd}}, "dynamic": True}},
            "'module'",
        ),
        (
            {"class_name": "LossScaleOptimizerV3", "config": {"inner_optimizer": {"class_name": "os.system", "config": {"command": cmd}}}},
            "'class_name'",
        ),
        (
            {
                "module": "keras.optimizers",
                "class_name": "LossScaleOptimizer",
                "config": {
                    "inner_optimizer": {
                        "class_name": "SGD",
                        "config": {"learning_rate": {"module": "builtins", "class_name": "eval", "config": {"source": cmd}}},
                    }
                },
            },
            "'module'",
        ),
        ({"module": "subprocess", "class_name": "LossScaleOptimizer", "config": {"inner_optimizer": {"class_name": "SGD", "config": {}}}}, "'module'"),
    ]


def test_hostile_configs_are_rejected_and_nothing_runs(tripwire, tmp_path):
    calls, canary = tripwire
    # The tripwire is armed: each of these would be recorded.
    os.system(f"touch {canary}")
    subprocess.Popen(["touch", str(canary)])
    importlib.import_module("json")
    __import__("subprocess")
    assert [c[0] for c in calls] == ["os.system", "subprocess.Popen", "import_module", "__import__"]
    calls.clear()
    cases = _hostile(canary)
    for config, field in cases:
        with pytest.raises(ValueError) as e:
            O.deserialize(config)
        assert field in str(e.value), (config, str(e.value))
        with pytest.raises(ValueError):
            O.get(config)
        with pytest.raises(ValueError):
            O.deserialize(config, custom_objects={"Harmless": O.SGD})
    with pytest.raises(ValueError, match="'class_name'"):
        O.get("os.system")
    with pytest.raises(ValueError, match="'module'"):
        LossScaleOptimizer.from_config({"inner_optimizer": {"module": "os", "class_name": "system", "config": {}}})
    assert calls == []


def test_malformed_configs_name_the_field():
    for config, field in [
        ({"config": {}}, "'class_name'"),
        ({"class_name": 3, "config": {}}, "'class_name'"),
        ({"class_name": "Adam", "config": "learning_rate=1"}, "'config'"),
        ({"class_name": "Adam", "config": {}, "module": 7}, "'module'"),
    ]:
        with pytest.raises(ValueError, match=field):
            O.deserialize(config)
    with pytest.raises(ValueError, match="expected a dict"):
        O.deserialize("adam")


# ----------------------------------------------------------------------------
# Bad constructor inputs: the classes raise what the (oracle-checked) factories raise
# ----------------------------------------------------------------------------

BAD = [
    ("legacy", "Adam", dict(foo=1)),
    ("legacy", "SGD", dict(clipnorm=-1.0)),
    ("legacy", "SGD", dict(clipvalue=-0.5)),
    ("legacy", "SGD", dict(global_clipnorm=-2.0)),
    ("legacy", "Adam", dict(decay=-0.1)),
    ("legacy", "Adam", dict(clipnorm=1.0, global_clipnorm=1.0)),
    ("legacy", "SGD", dict(momentum=1.5)),
    ("legacy", "RMSprop", dict(momentum=-0.1)),
    ("legacy", "Adagrad", dict(initial_accumulator_value=-1.0)),
    ("legacy", "Ftrl", dict(learning_rate_power=0.5)),
    ("legacy", "Ftrl", dict(l1_regularization_strength=-1.0)),
    ("legacy", "Nadam", dict(learning_rate=jk.schedules.ExponentialDecay(0.1, 10, 0.9))),
    ("current", "Adam", dict(foo=1)),
    ("current", "Adam", dict(decay=0.1)),
    ("current", "SGD", dict(gradient_aggregator=None)),
    ("current", "SGD", dict(gradient_transformers=[])),
    ("current", "Adam", dict(clipnorm=1.0, global_clipnorm=1.0)),
    ("current", "Adam", dict(clipnorm=-1.0)),
    ("current", "Adam", dict(weight_decay=-0.1)),
    ("current", "SGD", dict(momentum=2.0)),
    ("current", "Ftrl", dict(l2_regularization_strength=-1.0)),
    ("current", "Adam", dict(use_ema=True, ema_momentum=1.5)),
    ("current", "Adam", dict(use_ema=True, ema_overwrite_frequency=0.5)),
]


@pytest.mark.parametrize("family,name,kwargs", BAD, ids=[f"{f}-{n}-{sorted(k)}" for f, n, k in BAD])
def test_classes_raise_what_the_factories_raise(family, name, kwargs):
    factory = getattr(jk.legacy if family == "legacy" else jk, name.lower())
    with pytest.raises(Exception) as from_factory:
        factory(**kwargs)
    with pytest.raises(Exception) as from_class:
        getattr(FAMILIES[family], name)(**kwargs)
    assert type(from_class.value) is type(from_factory.value)
    assert isinstance(from_class.value, (TypeError, ValueError))
    assert str(from_class.value) == str(from_factory.value)


def test_layer_only_constructor_rules():
    f = lambda grads_and_vars: grads_and_vars  # noqa: E731
    for k in ("clipnorm", "global_clipnorm", "clipvalue"):
        with pytest.raises(ValueError) as e:
            O.legacy.SGD(gradient_transformers=[f], **{k: 1.0})
        assert str(e.value).startswith(
            f"`{k}` cannot be set when `gradient_transformers` is set. Instead, use the "
            "`gradient_transformers` to specify clipping and other transformations. Received: val=1.0, "
        )
    with pytest.raises(TypeError):
        O.Adam(0.1, 0.9, 0.999, 1e-7, False, False, "name", "one too many")
    assert O.Adam(0.1, 0.8).get_config()["beta_1"] == 0.8  # positional, in Keras's order
    # `lr`: the legacy alias (with a warning); the current family ignores it, as TF-Keras does.
    with pytest.warns(DeprecationWarning):
        assert O.legacy.SGD(lr=0.5).get_config()["learning_rate"] == 0.5
    with pytest.warns(DeprecationWarning):
        assert O.SGD(lr=0.5).get_config()["learning_rate"] == np.float32(0.01)


def test_legacy_gradient_transformers_run_on_the_pairs():
    seen = []

    def halve(grads_and_vars):
        seen.append([v.name for _, v in grads_and_vars])
        return [(g * 0.5, v) for g, v in grads_and_vars]

    w = jk.Variable(np.ones(2, np.float32), name="w")
    opt = O.legacy.SGD(learning_rate=1.0, gradient_transformers=[halve])
    opt.apply_gradients([(np.ones(2, np.float32), w)])
    np.testing.assert_array_equal(w.numpy(), [0.5, 0.5])
    assert seen == [["w:0"]]  # traced once, with the variables


# ----------------------------------------------------------------------------
# LossScaleOptimizer
# ----------------------------------------------------------------------------


def _keras_loss_scale_rule(scale, counter, finite, growth_steps):
    """tf.keras.mixed_precision's dynamic rule, written out from its documentation."""
    if not finite:
        return max(scale / 2, 1.0), 0
    if counter + 1 >= growth_steps:
        doubled = np.float32(scale) * np.float32(2)
        return (float(doubled) if np.isfinite(doubled) else scale), 0
    return scale, counter + 1


def _first_optimizer_state(state):
    return first(state, jk.OptimizerState)


@pytest.mark.parametrize(
    "make_inner",
    [
        lambda: jk.chain(jk.clip_by_global_norm(1.0), jk.legacy.sgd(0.1, momentum=0.5)),
        lambda: jk.adam(0.05),
        lambda: optax.adam(0.05),
    ],
    ids=["jk-chain", "jk-adam", "optax-adam"],
)
def test_functional_loss_scaling_composes_with_any_transform(make_inner):
    inner = make_inner()
    tx = loss_scale_optimizer(inner, initial_scale=2.0**4, dynamic_growth_steps=3)
    params = {"w": jnp.asarray([1.0, -2.0, 0.5]), "b": jnp.asarray(0.25)}
    state = tx.init(params)
    assert isinstance(state, LossScaleState) and float(state.loss_scale) == 16.0

    def loss(p):
        return jnp.sum(p["w"] ** 2) + p["b"] ** 3

    # scale_loss / unscale_gradients: grads of the scaled loss, unscaled, are the grads.
    scaled = jax.grad(lambda p: scale_loss(loss(p), state))(params)
    plain = jax.grad(loss)(params)
    for k in params:
        np.testing.assert_array_equal(np.asarray(scaled[k]), 16 * np.asarray(plain[k]))
    unscaled = unscale_gradients(scaled, state)
    for k in params:
        np.testing.assert_array_equal(np.asarray(unscaled[k]), np.asarray(plain[k]))

    @jax.jit
    def step(params, state):
        grads = jax.grad(lambda p: scale_loss(loss(p), state))(params)
        grads = unscale_gradients(grads, state)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    ref_params, ref_state = params, inner.init(params)
    scale, counter = 16.0, 0
    bad_steps = {2, 3, 7}
    for k in range(12):
        if k in bad_steps:
            # An overflowing loss: poison a parameter so the gradients are not finite.
            poisoned = dict(params, b=jnp.asarray(np.inf if k != 3 else np.nan))
            before = jax.tree_util.tree_map(np.asarray, params)
            _, state = step(poisoned, state)
            finite = False
            # Keras counts a skipped step: our optimizers' step counters advance
            # (optax's own counters are not Keras's and stay put).
            ref_state = jax.tree_util.tree_map(
                lambda x: x._replace(iterations=x.iterations + 1) if isinstance(x, jk.OptimizerState) else x,
                ref_state,
                is_leaf=lambda x: isinstance(x, jk.OptimizerState),
            )
            for key in params:
                np.testing.assert_array_equal(np.asarray(params[key]), before[key])
        else:
            grads = jax.grad(loss)(ref_params)
            updates, ref_state = inner.update(grads, ref_state, ref_params)
            ref_params = optax.apply_updates(ref_params, updates)
            params, state = step(params, state)
            finite = True
            for key in params:
                np.testing.assert_allclose(np.asarray(params[key]), np.asarray(ref_params[key]), rtol=1e-6, atol=1e-7)
        scale, counter = _keras_loss_scale_rule(scale, counter, finite, 3)
        assert float(state.loss_scale) == scale and int(state.counter) == counter, k
    assert scale != 16.0


def test_functional_skipped_steps_still_count():
    tx = loss_scale_optimizer(jk.adam(0.1), initial_scale=8.0)
    params = [jnp.ones(2)]
    state = tx.init(params)
    _, state = tx.update([jnp.asarray([np.inf, 1.0])], state, params)
    assert int(_first_optimizer_state(state.inner).iterations) == 1  # Keras counts skipped steps
    np.testing.assert_array_equal(np.asarray(_first_optimizer_state(state.inner).slots.m[0]), [0.0, 0.0])
    # Not dynamic: a fixed scale, and non-finite steps are applied (as Keras does).
    fixed = loss_scale_optimizer(jk.sgd(0.1), initial_scale=8.0, dynamic=False)
    s = fixed.init(params)
    u, s = fixed.update([jnp.asarray([np.inf, 1.0])], s, params)
    assert float(s.loss_scale) == 8.0 and not np.isfinite(np.asarray(u[0])[0])
    with pytest.raises(ValueError, match="initial_scale"):
        loss_scale_optimizer(jk.sgd(), initial_scale=0.0)
    with pytest.raises(ValueError, match="dynamic_growth_steps"):
        loss_scale_optimizer(jk.sgd(), dynamic_growth_steps=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_scale_optimizer_float16_overflow_skip_and_growth(family):
    """float16 variables, a loss whose scaled gradients overflow: Keras's dynamic
    loss scaling, simulated step by step in NumPy float16 arithmetic."""
    v0 = np.array([2.0, -1.0, 0.5], np.float16)
    var = jk.Variable(v0, name="h")
    opt = LossScaleOptimizer(FAMILIES[family].SGD(learning_rate=0.1), dynamic_growth_steps=2)
    assert float(opt.loss_scale.numpy()) == 2.0**15 and opt.dynamic_growth_steps == 2

    expected_v, scale, counter = v0.copy(), 2.0**15, 0
    history = []
    for k in range(12):
        before = var.numpy()
        loss = opt.minimize(lambda: jnp.sum(var.value**2), [var])
        # NumPy: the scaled loss's gradient 2 * v * float16(scale) overflows or not.
        with np.errstate(over="ignore", invalid="ignore"):
            scaled_grads = np.float16(2) * expected_v * np.float16(scale)
        finite = bool(np.all(np.isfinite(scaled_grads)))
        history.append(finite)
        if finite:
            unscaled = scaled_grads * np.float16(np.float32(1) / np.float32(scale))
            expected_v = (expected_v.astype(np.float32) - np.float32(0.1) * unscaled.astype(np.float32)).astype(np.float16)
            np.testing.assert_allclose(var.numpy(), expected_v, rtol=2e-3)
            expected_v = var.numpy()  # follow our rounding so later steps compare like with like
        else:
            np.testing.assert_array_equal(var.numpy(), before)  # skipped
        if finite:  # minimize returns the unscaled loss before the step
            assert float(loss) == pytest.approx(float(np.sum(before.astype(np.float32) ** 2)), rel=2e-3)
        scale, counter = _keras_loss_scale_rule(scale, counter, finite, 2)
        assert float(opt.loss_scale.numpy()) == scale, k
        assert int(opt.dynamic_counter.numpy()) == counter, k
        assert int(opt.iterations.numpy()) == k + 1  # skipped steps count
    assert var.dtype == np.float16
    # The first two steps overflow (4 * 2**15 and 4 * 2**14 exceed float16's max), then
    # training recovers; the scale grows back until it overflows again.
    assert history[:3] == [False, False, True]
    assert True in history[3:] and False in history[3:]
    assert float(np.abs(var.numpy()).max()) < 2.0


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_scale_optimizer_config_round_trip(family):
    inner = FAMILIES[family].Adam(learning_rate=0.01, beta_1=0.8)
    for opt in (
        LossScaleOptimizer(inner),
        LossScaleOptimizer(FAMILIES[family].SGD(), dynamic=False, initial_scale=128.0),
        LossScaleOptimizer(FAMILIES[family].RMSprop(), initial_scale=64, dynamic_growth_steps=10),
    ):
        config = opt.get_config()
        assert set(config) == {"inner_optimizer", "dynamic", "initial_scale", "dynamic_growth_steps"}
        back = LossScaleOptimizer.from_config(config)
        assert back.get_config() == config
        assert type(back.inner_optimizer) is type(opt.inner_optimizer)
        blob = json.loads(json.dumps(O.serialize(opt)))
        again = O.deserialize(blob)
        assert isinstance(again, LossScaleOptimizer) and again.get_config() == config
    assert LossScaleOptimizer(O.SGD()).get_config()["initial_scale"] == 2.0**15
    assert LossScaleOptimizer(O.SGD()).get_config()["dynamic_growth_steps"] == 2000


def test_loss_scale_optimizer_constructor_errors():
    with pytest.raises(TypeError, match="must be an instance of Optimizer"):
        LossScaleOptimizer(optax.sgd(0.1))
    inner = O.SGD()
    wrapped = LossScaleOptimizer(inner)
    with pytest.raises(TypeError, match="cannot wrap another LossScaleOptimizer"):
        LossScaleOptimizer(wrapped)
    with pytest.raises(ValueError, match="already wrapped"):
        LossScaleOptimizer(inner)
    with pytest.raises(ValueError, match='"initial_scale" must be specified'):
        LossScaleOptimizer(O.SGD(), dynamic=False)
    with pytest.raises(ValueError, match='"dynamic_growth_steps" must be None'):
        LossScaleOptimizer(O.SGD(), dynamic=False, initial_scale=2.0, dynamic_growth_steps=3)
    with pytest.raises(TypeError, match='"dynamic"'):
        LossScaleOptimizer(O.SGD(), dynamic=1)
