"""Every optimizer x family x meaningful option, against TF-Keras, 300 steps.

Tolerances (relative to the distance the parameters moved, max over leaves):

* float64: 1e-10.  Both sides compute in float64 with the same roundings of
  the hyperparameters, so only round-off separates them (observed ~1e-15).
* float32: ``STEPS * eps_f32`` (3.6e-5), i.e. one float32 rounding per step.
  The formulas are the same operation for operation, but XLA:CPU contracts
  ``a * b + c`` into fused multiply-adds, rewrites ``a / sqrt(b)`` as
  ``a * rsqrt(b)``, and its float32 ``pow``/``rsqrt`` differ from Eigen's in
  the last bit; each of those can move one rounding per step.  The worst
  figures are printed at the end of the session (observed ~1e-6).
  ``test_exact_without_fma.py`` shows the bit-exact agreement when FMA
  contraction is disabled.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import tf_keras

import jaxopt_keras as jk
from harness import EAGER_ONLY, TOLERANCE, agreement, compare, jax_factory, make_problem, run_jax, run_tf, tf_class

BOTH = ("legacy", "current")

# (class name, families, constructor arguments)
CASES = [
    ("SGD", BOTH, dict(learning_rate=0.01)),
    ("SGD", BOTH, dict(learning_rate=0.01, momentum=0.9)),
    ("SGD", BOTH, dict(learning_rate=0.01, momentum=0.9, nesterov=True)),
    ("Adam", BOTH, dict(learning_rate=0.01)),
    ("Adam", BOTH, dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-3, amsgrad=True)),
    ("Adam", ("current",), dict(learning_rate=0.01, adaptive_epsilon=True, epsilon=1e-4)),
    ("Adamax", BOTH, dict(learning_rate=0.01)),
    ("Adamax", BOTH, dict(learning_rate=0.02, beta_1=0.7, beta_2=0.95, epsilon=1e-2)),
    ("Nadam", BOTH, dict(learning_rate=0.01)),
    ("Nadam", BOTH, dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-3)),
    ("Adagrad", BOTH, dict(learning_rate=0.1)),
    ("Adagrad", BOTH, dict(learning_rate=0.1, initial_accumulator_value=0.5, epsilon=1e-3)),
    ("Adadelta", BOTH, dict(learning_rate=1.0)),
    ("Adadelta", BOTH, dict(learning_rate=0.5, rho=0.8, epsilon=1e-4)),
    ("RMSprop", BOTH, dict(learning_rate=0.01)),
    ("RMSprop", BOTH, dict(learning_rate=0.01, momentum=0.9)),
    ("RMSprop", BOTH, dict(learning_rate=0.01, centered=True)),
    ("RMSprop", BOTH, dict(learning_rate=0.01, rho=0.8, momentum=0.5, centered=True, epsilon=1e-4)),
    ("Ftrl", BOTH, dict(learning_rate=0.1)),
    ("Ftrl", BOTH, dict(learning_rate=0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.01, beta=0.1)),
    ("Ftrl", BOTH, dict(learning_rate=0.1, l2_shrinkage_regularization_strength=0.01, initial_accumulator_value=0.5)),
    ("Ftrl", BOTH, dict(learning_rate=0.1, learning_rate_power=-0.7, l1_regularization_strength=0.5)),
    # OptimizerV2's decay, lr/(1 + decay*t), on every class that honours it.
    ("SGD", ("legacy",), dict(learning_rate=0.05, momentum=0.9, decay=0.01)),
    ("Adam", ("legacy",), dict(learning_rate=0.01, decay=0.01)),
    ("Adamax", ("legacy",), dict(learning_rate=0.01, decay=0.01)),
    ("Adagrad", ("legacy",), dict(learning_rate=0.1, decay=0.01)),
    ("Adadelta", ("legacy",), dict(learning_rate=1.0, decay=0.01)),
    ("RMSprop", ("legacy",), dict(learning_rate=0.01, decay=0.01)),
    ("Ftrl", ("legacy",), dict(learning_rate=0.1, decay=0.01)),
    # Legacy Nadam's momentum schedule decay, and the epsilon=0 -> 1e-7 rule.
    ("Nadam", ("legacy",), dict(learning_rate=0.01, schedule_decay=0.05)),
    ("Adam", ("legacy",), dict(learning_rate=0.01, epsilon=0.0)),
]


def _params():
    for name, families, kwargs in CASES:
        for family in families:
            for dtype in (np.float64, np.float32):
                label = ",".join(f"{k}={v}" for k, v in kwargs.items())
                yield pytest.param(name, family, kwargs, dtype, id=f"{family}-{name}-{label}-{dtype.__name__}")


@pytest.mark.parametrize("name,family,kwargs,dtype", list(_params()))
def test_matches_tf_keras(report, name, family, kwargs, dtype):
    label = f"{family} {name} {kwargs}"
    compare(report, label, family, name, kwargs, lambda: jax_factory(family, name)(**kwargs), dtype)


def _numpy_params():
    for name, families, kwargs in CASES:
        for family in families:
            label = ",".join(f"{k}={v}" for k, v in kwargs.items())
            yield pytest.param(name, family, kwargs, id=f"{family}-{name}-{label}")


@pytest.mark.parametrize("name,family,kwargs", list(_numpy_params()))
def test_numpy_float64_hyperparameters_match_tf_keras(report, name, family, kwargs):
    """Every float argument an ``np.float64`` (a rate computed with NumPy), on float64 variables.

    TF-Keras's ``tf.cast(np.float64(0.9), tf.float64)`` is exact, and
    OptimizerV2's hyperparameter variables take the value's dtype (float64),
    where a Python float is rounded to float32 first: the same tolerance,
    1e-10 of the distance moved, holds only if ours keeps the float64 too.
    (The current family's learning rate is a float32 variable in TF-Keras,
    whatever it is given.)
    """
    numpy_kwargs = {k: np.float64(v) if type(v) is float else v for k, v in kwargs.items()}
    label = f"{family} {name} np.float64 {kwargs}"
    compare(report, label, family, name, numpy_kwargs, lambda: jax_factory(family, name)(**numpy_kwargs), np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_legacy_lr_alias(report, dtype):
    """``lr=`` reaches the learning rate, with a deprecation warning, as in OptimizerV2."""
    with pytest.warns(DeprecationWarning, match="`lr` argument is deprecated"):
        transform = jk.legacy.adam(lr=0.02)
    compare(report, "legacy Adam lr=0.02", "legacy", "Adam", dict(lr=0.02), lambda: transform, dtype)


def test_none_gradient_leaf_matches_keras_filtering(report):
    """A ``None`` gradient leaves its parameter and slots alone, like Keras's filter."""
    dtype = np.float64
    with jax.enable_x64(True):
        params, grads = make_problem(dtype, steps=100)
        # TF: variable 1 never receives a gradient (Keras drops (None, var) pairs).
        import tensorflow as tf

        opt = tf_keras.optimizers.legacy.Adam(learning_rate=0.01)
        vs = [tf.Variable(p) for p in params]
        for g in grads:
            opt.apply_gradients([(tf.constant(x), v) for i, (x, v) in enumerate(zip(g, vs)) if i != 1])
        theirs = [v.numpy() for v in vs]
        masked = [[None if i == 1 else x for i, x in enumerate(g)] for g in grads]
        t = jk.legacy.adam(learning_rate=0.01)
        p = [jax.numpy.asarray(x) for x in params]
        s = t.init(p)
        step = jax.jit(lambda p, s, g: t.update(g, s, p))
        for g in masked:
            u, s = step(p, s, g)
            p = jk.apply_updates(p, u)
    assert np.array_equal(np.asarray(p[1]), params[1])
    assert np.array_equal(np.asarray(s.slots.m[1]), np.zeros_like(params[1]))
    a = agreement([np.asarray(x) for x in p], theirs, params)
    assert a.relative <= TOLERANCE[dtype]
    assert int(s.iterations) == int(opt.iterations.numpy()) == 100


@pytest.mark.parametrize("family,name", sorted(EAGER_ONLY))
def test_the_cases_run_eagerly_do_differ_inside_tf_function(family, name):
    """Each case the oracles run eagerly (``harness.EAGER_ONLY``) computes otherwise
    inside ``tf.function``, and ours is the eager run: the list holds no stale entry."""
    with jax.enable_x64(True):
        params, grads = make_problem(np.float64, steps=50)
        eager, _ = run_tf(lambda: tf_class(family, name)(learning_rate=0.01), params, grads, graph=False)
        graph, _ = run_tf(lambda: tf_class(family, name)(learning_rate=0.01), params, grads, graph=True)
        ours, _ = run_jax(jax_factory(family, name)(learning_rate=0.01), params, grads)
    assert agreement(ours, eager, params).relative <= TOLERANCE[np.float64]
    assert agreement(ours, graph, params).relative > 1e3 * TOLERANCE[np.float64], EAGER_ONLY[(family, name)]
