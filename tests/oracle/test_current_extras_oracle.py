"""The current family's weight decay and EMA, against TF-Keras, 300 steps."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import tensorflow as tf

import jaxopt_keras as jk
from harness import TOLERANCE, agreement, compare, graph_for, jax_factory, make_problem, run_jax, tf_class, tf_step

DECAY_CASES = [
    ("SGD", dict(learning_rate=0.05, momentum=0.9, weight_decay=0.05)),
    ("Adam", dict(learning_rate=0.01, weight_decay=0.1)),
    ("RMSprop", dict(learning_rate=0.01, weight_decay=0.05, centered=True)),
    ("Adagrad", dict(learning_rate=0.1, weight_decay=0.02)),
    ("Ftrl", dict(learning_rate=0.1, weight_decay=0.05, l1_regularization_strength=0.001)),
    # A schedule: weight decay uses the learning rate of the step.  Its initial
    # rate takes the run's dtype so that TF and we both compute it in that dtype.
    ("Adam", dict(learning_rate="schedule", weight_decay=0.1)),
]


def _with_schedule(kwargs, dtype):
    if kwargs.get("learning_rate") != "schedule":
        return kwargs
    return dict(kwargs, learning_rate=jk.schedules.ExponentialDecay(dtype(0.02), 50, 0.5))


def _tf_kwargs(kwargs):
    import tf_keras

    out = dict(kwargs)
    lr = out.get("learning_rate")
    if isinstance(lr, jk.schedules.LearningRateSchedule):
        # The same constructor arguments (serialize writes an np.float64 as a Python
        # float, which TF-Keras's schedule would compute in float32).
        out["learning_rate"] = getattr(tf_keras.optimizers.schedules, type(lr).__name__).from_config(lr.get_config())
    return out


@pytest.mark.parametrize("name,kwargs", DECAY_CASES, ids=[f"{n}-{k}" for n, k in DECAY_CASES])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weight_decay_matches_tf_keras(report, name, kwargs, dtype):
    kwargs = _with_schedule(kwargs, dtype)
    compare(report, f"current {name} {kwargs}", "current", name, _tf_kwargs(kwargs),
            lambda: jax_factory("current", name)(**kwargs), dtype)


EMA_CASES = [
    ("SGD", dict(learning_rate=0.05, momentum=0.9, use_ema=True)),
    ("Adam", dict(learning_rate=0.01, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=7)),
    ("RMSprop", dict(learning_rate=0.01, use_ema=True)),  # Keras's default overwrite frequency: 100
    ("Ftrl", dict(learning_rate=0.1, use_ema=True, ema_momentum=0.95, ema_overwrite_frequency=13, weight_decay=0.01)),
]


@pytest.mark.parametrize("name,kwargs", EMA_CASES, ids=[f"{n}-{k}" for n, k in EMA_CASES])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ema_matches_tf_keras(report, name, kwargs, dtype):
    """Params, moving averages, and the finalized (averaged) variables."""
    with jax.enable_x64(dtype == np.float64):
        params, grads = make_problem(dtype)
        opt = tf_class("current", name)(**kwargs)
        vs = [tf.Variable(p) for p in params]
        step = tf_step(opt, vs, graph_for("current", name))
        for g in grads:
            step(g)
        tf_params = [v.numpy() for v in vs]
        tf_avg = [a.numpy() for a in opt._model_variables_moving_average]
        opt.finalize_variable_values(vs)
        tf_final = [v.numpy() for v in vs]
        ours, state = run_jax(jax_factory("current", name)(**kwargs), params, grads)
        avg = [np.asarray(a) for a in jk.ema_params(state)]
    tol = TOLERANCE[dtype]
    for label, a, b in [("params", ours, tf_params), ("averages", avg, tf_avg), ("finalized", avg, tf_final)]:
        r = agreement(a, b, params)
        report(f"current {name} {kwargs} {label:9s} {dtype.__name__}: rel {r.relative:.1e}")
        assert r.moved > 0.01 and r.relative <= tol, (label, r)


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adadelta"])
def test_chained_decay_transform_equals_the_constructor_argument(name):
    """chain(opt, decoupled_weight_decay) is Keras's weight_decay up to rounding."""
    dtype = np.float64
    with jax.enable_x64(True):
        params, grads = make_problem(dtype, steps=100)
        kw = dict(learning_rate=0.05)
        inside, _ = run_jax(jax_factory("current", name)(weight_decay=0.1, **kw), params, grads)
        chained, _ = run_jax(
            jk.chain(jax_factory("current", name)(**kw), jk.decoupled_weight_decay(0.1, learning_rate=0.05)),
            params, grads,
        )
        plain, _ = run_jax(jax_factory("current", name)(**kw), params, grads)
    r = agreement(chained, inside, params)
    assert r.relative <= 1e-10, r
    # ... and the decay does something.
    assert agreement(plain, inside, params).max_abs_diff > 1e-3


NEW_OPTIMIZERS = [
    ("AdamW", dict(learning_rate=0.01)),
    ("AdamW", dict(learning_rate=0.01, weight_decay=0.1, amsgrad=True, clipnorm=1.0)),
    ("Lion", dict(learning_rate=0.001)),
    ("Lion", dict(learning_rate=0.003, beta_1=0.8, beta_2=0.95, weight_decay=0.1)),
    ("Adafactor", dict(learning_rate=0.01)),
    ("Adafactor", dict(learning_rate=0.05, relative_step=False, beta_2_decay=-0.6, clip_threshold=0.5, epsilon_2=1e-2)),
    ("Adafactor", dict(learning_rate="schedule", weight_decay=0.01)),
]


@pytest.mark.parametrize("name,kwargs", NEW_OPTIMIZERS, ids=[f"{n}-{k}" for n, k in NEW_OPTIMIZERS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adamw_lion_adafactor_match_tf_keras(report, name, kwargs, dtype):
    """300 steps on scalar, rank-1, rank-2 and rank-3 parameters (Adafactor factors the last two)."""
    kwargs = _with_schedule(kwargs, dtype)
    compare(report, f"current {name} {kwargs}", "current", name, _tf_kwargs(kwargs),
            lambda: jax_factory("current", name)(**kwargs), dtype)
