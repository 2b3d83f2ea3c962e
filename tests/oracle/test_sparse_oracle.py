"""Row-sparse gradients against TF-Keras fed ``tf.IndexedSlices`` from ``tf.gather``.

Each step differentiates ``sum(tf.gather(table, idx) * w)`` in TF, which gives
``IndexedSlices(values=w, indices=idx)`` with repeated indices; we feed the
same rows as :class:`jaxopt_keras.IndexedSlices`, padded with out-of-range
indices (which must be ignored), through a jitted step.  Same tolerances as
the dense oracle tests (see test_optimizers.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

import jaxopt_keras as jk
from harness import TOLERANCE, agreement, graph_for, jax_factory, tf_class

ROWS, WIDTH, K, PAD, STEPS = 12, 3, 6, 2, 150

BOTH = ("legacy", "current")
CASES = [
    ("SGD", BOTH, dict(learning_rate=0.05)),
    ("SGD", BOTH, dict(learning_rate=0.05, momentum=0.9)),
    ("SGD", BOTH, dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
    ("Adam", BOTH, dict(learning_rate=0.01)),
    ("Adam", BOTH, dict(learning_rate=0.01, amsgrad=True)),
    ("Adamax", BOTH, dict(learning_rate=0.01)),
    ("Nadam", BOTH, dict(learning_rate=0.01)),
    ("Adagrad", BOTH, dict(learning_rate=0.1)),
    ("Adadelta", BOTH, dict(learning_rate=1.0, epsilon=1e-4)),
    ("RMSprop", BOTH, dict(learning_rate=0.01)),
    ("RMSprop", BOTH, dict(learning_rate=0.01, centered=True)),
    ("RMSprop", BOTH, dict(learning_rate=0.01, momentum=0.5)),
    ("RMSprop", BOTH, dict(learning_rate=0.01, momentum=0.5, centered=True)),
    ("Ftrl", BOTH, dict(learning_rate=0.1)),
    ("Ftrl", BOTH, dict(learning_rate=0.1, l1_regularization_strength=0.01, l2_shrinkage_regularization_strength=0.01)),
    ("Ftrl", ("legacy",), dict(learning_rate=0.1, learning_rate_power=-0.7)),
    ("AdamW", ("current",), dict(learning_rate=0.01, weight_decay=0.05)),
    ("Lion", ("current",), dict(learning_rate=0.001)),
    ("Adam", BOTH, dict(learning_rate=0.01, clipnorm=0.5)),
    ("SGD", BOTH, dict(learning_rate=0.05, momentum=0.9, global_clipnorm=1.0, clipvalue=0.3)),
]


def _problem(dtype, seed=0):
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((ROWS, WIDTH)).astype(dtype)
    dense = rng.standard_normal(4).astype(dtype)
    steps = []
    for t in range(STEPS):
        idx = rng.integers(0, ROWS, K).astype(np.int64)
        idx[1] = idx[0]  # always a duplicate
        w = (rng.standard_normal((K, WIDTH)) * (30.0 if t % 37 == 5 else 1.0)).astype(dtype)
        steps.append((idx, w, rng.standard_normal(4).astype(dtype)))
    return table, dense, steps


def _run_tf(family, name, kwargs, table, dense, steps):
    """TF-Keras's parameters after ``steps``, each step in a ``tf.function`` as ``model.fit``
    runs it (eagerly where that changes what TF-Keras computes: ``harness.graph_for``)."""
    opt = tf_class(family, name)(**kwargs)
    tv, dv = tf.Variable(table), tf.Variable(dense)

    def step(idx, w, gd):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(tv, idx) * w)
        g = tape.gradient(loss, tv)
        assert isinstance(g, tf.IndexedSlices)
        opt.apply_gradients([(g, tv), (gd, dv)])
        return tv.read_value()

    if graph_for(family, name):
        step = tf.function(step)
    for idx, w, gd in steps:
        step(tf.constant(idx), tf.constant(w), tf.constant(gd))
    return [tv.numpy(), dv.numpy()]


def _run_jax(transform, table, dense, steps):
    pad_idx = np.full(PAD, ROWS, np.int64)

    @jax.jit
    def step(params, state, idx, w, gd):
        g = jk.IndexedSlices(w, idx, (ROWS, WIDTH))
        updates, state = transform.update([g, gd], state, params)
        return jk.apply_updates(params, updates), state

    params = [jnp.asarray(table), jnp.asarray(dense)]
    state = transform.init(params)
    for idx, w, gd in steps:
        # Padding: out-of-range indices with garbage values, which must be dropped.
        idx_p = np.concatenate([idx, pad_idx]).astype(np.int32)
        w_p = np.concatenate([w, np.full((PAD, WIDTH), 1e6, w.dtype)])
        params, state = step(params, state, idx_p, w_p, gd)
    return [np.asarray(p) for p in params]


def _params():
    for name, families, kwargs in CASES:
        for family in families:
            for dtype in (np.float64, np.float32):
                yield pytest.param(family, name, kwargs, dtype, id=f"{family}-{name}-{kwargs}-{dtype.__name__}")


@pytest.mark.parametrize("family,name,kwargs,dtype", list(_params()))
def test_sparse_matches_tf_keras(report, family, name, kwargs, dtype):
    with jax.enable_x64(dtype == np.float64):
        table, dense, steps = _problem(dtype)
        theirs = _run_tf(family, name, kwargs, table, dense, steps)
        ours = _run_jax(jax_factory(family, name)(**kwargs), table, dense, steps)
    a = agreement(ours, theirs, [table, dense])
    report(f"sparse {family} {name} {kwargs} {dtype.__name__}: rel {a.relative:.1e}, {a.max_ulps:.0f} ulp")
    assert a.moved > 0.01
    assert a.relative <= TOLERANCE[dtype], a


@pytest.mark.parametrize("family", BOTH)
def test_sparse_through_the_keras_layer(family):
    """The Keras layer takes IndexedSlices gradients too."""
    table, dense, steps = _problem(np.float32, seed=1)
    theirs = _run_tf(family, "Adagrad", dict(learning_rate=0.1), table, dense, steps[:30])
    opt = (jk.optimizers.legacy if family == "legacy" else jk.optimizers).Adagrad(learning_rate=0.1)
    tv, dv = jk.Variable(table), jk.Variable(dense)
    for idx, w, gd in steps[:30]:
        opt.apply_gradients([(jk.IndexedSlices(w, idx.astype(np.int32), (ROWS, WIDTH)), tv), (gd, dv)])
    a = agreement([tv.numpy(), dv.numpy()], theirs, [table, dense])
    assert a.relative <= TOLERANCE[np.float32], a


FTRL_NONFINITE = [
    dict(learning_rate=0.1),
    dict(learning_rate=0.1, l1_regularization_strength=0.05, l2_shrinkage_regularization_strength=0.01),
    dict(learning_rate=0.1, learning_rate_power=-0.7, l2_regularization_strength=0.01),
]


@pytest.mark.parametrize("width", [WIDTH, 1], ids=["rows", "one-element-rows"])
@pytest.mark.parametrize("kwargs", FTRL_NONFINITE, ids=[str(k) for k in FTRL_NONFINITE])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_legacy_sparse_ftrl_non_finite_gradients_match_tf_keras(report, kwargs, dtype, width):
    """Legacy Ftrl's sparse kernel sets ``p = (clip(linear, -l1, l1) - linear) / y``
    with no select: a NaN or infinite gradient entry leaves NaN where the dense
    kernel's select leaves 0.  TF-Keras is fed the ``IndexedSlices`` directly
    (``tf.gather`` cannot make an infinite gradient); rows of one element take
    the kernel's scalar path.  NaN where TF-Keras has NaN, the finite entries
    within the dense oracle's tolerance."""
    rng = np.random.default_rng(5)
    table = rng.standard_normal((ROWS, width)).astype(dtype)
    steps = []
    for t in range(40):
        idx = rng.integers(0, ROWS, K)
        idx[1] = idx[0]
        w = rng.standard_normal((K, width)).astype(dtype)
        if t in (3, 17, 29):  # +inf, NaN, -inf in one entry (the entry's row and column vary)
            w[t % K, t % width] = {3: np.inf, 17: np.nan, 29: -np.inf}[t]
        steps.append((idx, w))
    opt = tf_class("legacy", "Ftrl")(**kwargs)
    tv = tf.Variable(table)
    for idx, w in steps:
        opt.apply_gradients([(tf.IndexedSlices(tf.constant(w), tf.constant(idx), tf.constant([ROWS, width], tf.int64)), tv)])
    theirs = tv.numpy()
    with jax.enable_x64(dtype == np.float64):
        transform = jax_factory("legacy", "Ftrl")(**kwargs)
        params = jnp.asarray(table)
        state = transform.init(params)
        step = jax.jit(lambda p, s, i, w: transform.update(jk.IndexedSlices(w, i, (ROWS, width)), s, p))
        for idx, w in steps:
            updates, state = step(params, state, jnp.asarray(idx, jnp.int32), jnp.asarray(w))
            params = jk.apply_updates(params, updates)
        ours = np.asarray(params)
    assert np.isnan(theirs).sum() >= 2, "the comparison needs TF-Keras's NaN entries"
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    finite = ~np.isnan(theirs)
    a = agreement([ours[finite]], [theirs[finite]], [table[finite]])
    report(f"sparse legacy Ftrl non-finite {kwargs} width {width} {dtype.__name__}: rel {a.relative:.1e}, {int(np.isnan(theirs).sum())} NaN")
    assert a.moved > 0.01
    assert a.relative <= TOLERANCE[dtype], a


def test_legacy_sparse_ftrl_zero_accumulator_is_not_tf_kerass_nan():
    """Where TF's sparse Ftrl kernel divides 0 by 0 we do not copy it.

    With ``initial_accumulator_value=0`` and no ``l2``/``beta``, an entry whose
    gradients so far are all 0 has ``linear == 0`` and ``y == 0``: the kernel's
    ``(clip(0) - 0) / 0`` makes it NaN for good, while the dense kernel (and
    FTRL) gives 0.  Ours gives 0 on both paths (docs/sparse.md)."""
    kwargs = dict(learning_rate=0.1, initial_accumulator_value=0.0)
    table = np.arange(1.0, 7.0, dtype=np.float32).reshape(3, 2)
    w, idx = np.array([[0.0, 1.0]], np.float32), np.array([1])
    opt = tf_class("legacy", "Ftrl")(**kwargs)
    tv = tf.Variable(table)
    opt.apply_gradients([(tf.IndexedSlices(tf.constant(w), tf.constant(idx), tf.constant([3, 2], tf.int64)), tv)])
    assert np.isnan(tv.numpy()[1, 0])  # TF-Keras's sparse kernel: 0 / 0
    dense_tv = tf.Variable(table)
    tf_class("legacy", "Ftrl")(**kwargs).apply_gradients([(tf.constant(np.pad(w, ((1, 1), (0, 0)))), dense_tv)])
    assert dense_tv.numpy()[1, 0] == 0.0  # its dense kernel: 0
    transform = jax_factory("legacy", "Ftrl")(**kwargs)
    params = jnp.asarray(table)
    updates, _ = transform.update(jk.IndexedSlices(jnp.asarray(w), jnp.asarray(idx, jnp.int32), (3, 2)), transform.init(params), params)
    ours = np.asarray(jk.apply_updates(params, updates))
    assert ours[1, 0] == 0.0
    np.testing.assert_allclose(ours[1, 1], tv.numpy()[1, 1], rtol=1e-6)
    np.testing.assert_array_equal(np.delete(ours, 1, axis=0), np.delete(table, 1, axis=0))
