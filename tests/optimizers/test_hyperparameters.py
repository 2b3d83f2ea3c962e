"""Hyperparameters as attributes of the optimizer object: reading and setting
them (``opt.learning_rate = ...``, ``opt.lr``, ``.assign``) changes the state
the compiled step reads, never the program; schedules; the attributes that
are fixed once the optimizer is built, and those (clipping) that are not."""

from __future__ import annotations

import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from layer_helpers import FAMILIES, compiled_programs, grads_at, make_vars, values, with_hyperparams_of


HYPER_CASES = [
    ("legacy", "SGD", dict(learning_rate=0.1, momentum=0.5), "learning_rate", 0.05),
    ("legacy", "SGD", dict(learning_rate=0.1, momentum=0.5), "momentum", 0.9),
    ("legacy", "Adam", dict(learning_rate=0.1), "beta_1", 0.8),
    ("legacy", "Adam", dict(learning_rate=0.1), "epsilon", 1e-3),
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

    assert opt._step is step and compiled_programs(opt) == 1, "setting a hyperparameter recompiled"
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
    # Reading it gives the rate the last (third) step used, schedule(2), as TF-Keras's
    # `_current_learning_rate` (checked against TF-Keras in oracle/test_layer_api_oracle.py).
    assert float(opt.learning_rate.numpy()) == pytest.approx(0.1 * 0.5 ** (2 / 10), rel=1e-6)
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


def test_a_numeric_static_is_checked_as_the_constructor_checks_it():
    """Schedule-Free AdamW keeps its betas out of the state (constants of the compiled step, as
    Keras 3's); assigning one took any value unchecked (beta_1 = 5.0)."""
    opt = O.keras3.ScheduleFreeAdamW()
    for bad, message in ((5.0, r"must be in the range \[0, 1\]"), (0.0, "cannot be 0.0"), (True, "not a bool")):
        with pytest.raises(ValueError, match=message):
            opt.beta_1 = bad
        assert opt.get_config()["beta_1"] == 0.9
    opt.beta_1 = 0.5
    assert opt.get_config()["beta_1"] == 0.5
