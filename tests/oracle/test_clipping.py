"""Gradient clipping against TensorFlow: the transforms alone, and inside optimizers.

Keras's orders differ by family: OptimizerV2 applies ``clipvalue``, then
``clipnorm``, then ``global_clipnorm``; the current Optimizer applies only the
first of ``clipnorm``, ``global_clipnorm``, ``clipvalue`` that is set.  The
combined cases below fail if either order is wrong.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

import jaxopt_keras as jk
from harness import compare, jax_factory
from jaxopt_keras.transforms.clipping import clip_by_global_norm_keras3


def _tensors(dtype, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(), (7,), (5, 6), (2, 3, 4)]
    out = [(rng.standard_normal(s) * 3).astype(dtype) for s in shapes]
    out.append(np.zeros((4,), dtype))  # a zero tensor: norm 0, no division by zero
    return out


def _ulp_close(ours, theirs, ulps):
    for a, b in zip(ours, theirs):
        a = np.asarray(a)
        assert a.dtype == b.dtype
        np.testing.assert_array_max_ulp(a, b, maxulp=ulps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_by_value_is_tf_clip_by_value(dtype):
    ts = _tensors(dtype)
    with jax.enable_x64(dtype == np.float64):
        ours, _ = jax.jit(jk.clip_by_value(0.7).update)(ts, jk.EmptyState())
    theirs = [tf.clip_by_value(t, -0.7, 0.7).numpy() for t in ts]
    _ulp_close(ours, theirs, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_by_norm_is_tf_clip_by_norm(dtype):
    ts = _tensors(dtype)
    with jax.enable_x64(dtype == np.float64):
        ours, _ = jax.jit(jk.clip_by_norm(1.5).update)(ts, jk.EmptyState())
    theirs = [tf.clip_by_norm(t, 1.5).numpy() for t in ts]
    # The squared norm is a sum whose order XLA and Eigen choose differently,
    # and XLA reassociates (g * c) / n into g * (c / n): a few ulps.
    _ulp_close(ours, theirs, 4)
    # Below the threshold TF computes (g * c) / c, which is g to within an ulp.
    small = [t * 1e-3 for t in ts]
    with jax.enable_x64(dtype == np.float64):
        same, _ = jk.clip_by_norm(1e3).update(small, jk.EmptyState())
    _ulp_close(same, [tf.clip_by_norm(t, 1e3).numpy() for t in small], 1)
    _ulp_close(same, small, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_by_global_norm_is_tf_clip_by_global_norm(dtype):
    ts = _tensors(dtype)
    with jax.enable_x64(dtype == np.float64):
        ours, _ = jax.jit(jk.clip_by_global_norm(2.0).update)(ts, jk.EmptyState())
        norm = jk.global_norm(ts)
    theirs, tf_norm = tf.clip_by_global_norm([tf.constant(t) for t in ts], 2.0)
    np.testing.assert_array_max_ulp(np.asarray(norm), tf_norm.numpy(), maxulp=4)
    _ulp_close(ours, [t.numpy() for t in theirs], 4)


def test_non_finite_global_norm_gives_nan_as_tf():
    ts = [np.array([np.inf, 1.0], np.float32), np.array([2.0], np.float32)]
    ours, _ = jk.clip_by_global_norm(1.0).update(ts, jk.EmptyState())
    theirs, _ = tf.clip_by_global_norm([tf.constant(t) for t in ts], 1.0)
    for a, b in zip(ours, theirs):
        assert np.isnan(np.asarray(a)).all() and np.isnan(b.numpy()).all()


def test_none_leaves_pass_through_and_do_not_count():
    ts = [np.array([3.0, 4.0], np.float32), None, np.array([0.0], np.float32)]
    out, _ = jk.clip_by_global_norm(1.0).update(ts, jk.EmptyState())
    assert out[1] is None
    theirs, _ = tf.clip_by_global_norm([tf.constant(ts[0]), None, tf.constant(ts[2])], 1.0)
    np.testing.assert_array_max_ulp(np.asarray(out[0]), theirs[0].numpy(), maxulp=1)
    for t in (jk.clip_by_value(1.0), jk.clip_by_norm(1.0)):
        out, _ = t.update(ts, jk.EmptyState())
        assert out[1] is None


CLIPPING = [
    dict(clipvalue=0.5),
    dict(clipnorm=1.0),
    dict(global_clipnorm=2.0),
    dict(clipvalue=0.5, clipnorm=1.0),        # legacy: both; current: clipnorm only
    dict(clipvalue=0.5, global_clipnorm=2.0),  # legacy: both; current: global only
]


@pytest.mark.parametrize("family", ["legacy", "current"])
@pytest.mark.parametrize("name,base", [("SGD", dict(learning_rate=0.01, momentum=0.9)), ("Adam", dict(learning_rate=0.01))])
@pytest.mark.parametrize("clip", CLIPPING, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_optimizer_clipping_matches_tf_keras(report, family, name, base, clip, dtype):
    kwargs = {**base, **clip}
    compare(report, f"{family} {name} {kwargs}", family, name, kwargs, lambda: jax_factory(family, name)(**kwargs), dtype)


def test_clipping_orders_differ_between_families():
    """Same arguments, different Keras rules: the two families must disagree here."""
    g = [jnp.asarray([3.0, -4.0, 0.25])]
    p = [jnp.zeros(3)]
    legacy = jk.legacy.sgd(learning_rate=1.0, clipvalue=0.5, clipnorm=1.0)
    current = jk.sgd(learning_rate=1.0, clipvalue=0.5, clipnorm=1.0)
    ul, _ = legacy.update(g, legacy.init(p), p)
    uc, _ = current.update(g, current.init(p), p)
    # legacy: clip to [-0.5, 0.5] first -> norm 0.75 < 1, unchanged afterwards.
    np.testing.assert_allclose(np.asarray(ul[0]), [-0.5, 0.5, -0.25], rtol=1e-6)
    # current: clipnorm alone -> g / |g|.
    g0 = np.array([3.0, -4.0, 0.25])
    np.testing.assert_allclose(np.asarray(uc[0]), -g0 / np.linalg.norm(g0), rtol=1e-6)


@pytest.mark.parametrize("clip", [jk.clip_by_global_norm, clip_by_global_norm_keras3], ids=["tf", "keras3"])
def test_global_norm_order_is_the_order_of_the_sum(clip):
    """``order`` sums the tensors as a list in that order would (Keras's variable order,
    not the tree's); a list that names a tensor twice, or misses one, is refused."""
    ts = [np.float32(3.0) * t for t in _tensors(np.float32, seed=1)]
    ts[2] = None  # a None leaf is not counted: order is over the others
    present = [t for t in ts if t is not None]
    order = [3, 0, 2, 1]
    ours, _ = clip(1.0, order).update(ts, jk.EmptyState())
    theirs, _ = clip(1.0).update([present[i] for i in order], jk.EmptyState())
    for k, i in enumerate(order):
        np.testing.assert_array_equal(np.asarray([x for x in ours if x is not None][i]), np.asarray(theirs[k]))
    assert ours[2] is None
    np.testing.assert_array_equal(jk.global_norm(ts, order), jk.global_norm([present[i] for i in order]))
    for bad in ([0, 1, 2], [0, 0, 1, 2], [1, 2, 3, 4]):
        with pytest.raises(ValueError, match="must name each of the 4 gradients once"):
            clip(1.0, bad).update(ts, jk.EmptyState())
