"""Gradient clipping, computed as TensorFlow computes it.

Each function returns a stateless
:class:`~jaxopt_keras.GradientTransformation`.  ``None`` gradient leaves
pass through and take no part in a global norm.  Thresholds are Python
numbers, converted to each gradient's dtype in one rounding, as TensorFlow
converts them.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core import transform as base
from jaxopt_keras.core.flat import contains_flat
from jaxopt_keras.core.sparse import IndexedSlices
from jaxopt_keras.core.xla import inlined_jnp


def _check(name: str, value: float) -> float:
    if value is None or value < 0:
        raise ValueError(f"Expected {name} >= 0, received: {value}")
    return value


def _as(value: float, dtype) -> jax.Array:
    return jnp.asarray(np.asarray(value, dtype))


@base.picklable
def clip_by_value(clipvalue: float) -> base.GradientTransformation:
    """Clips each gradient element to ``[-clipvalue, clipvalue]``.

    ``g = maximum(minimum(g, clipvalue), -clipvalue)``, as ``tf.clip_by_value``.

    Args:
      clipvalue: a non-negative threshold.

    Returns:
      A stateless transform.
    """
    _check("clipvalue", clipvalue)

    def clip(g):
        return jnp.maximum(jnp.minimum(g, _as(clipvalue, g.dtype)), _as(-clipvalue, g.dtype))

    def update(updates, state, params=None, **extra_args):
        del params, extra_args  # optax's extra arguments (value=loss): none is read here
        with inlined_jnp(updates):
            return base.map_values(clip, updates), state

    return base.GradientTransformation(lambda params: base.EmptyState(), update)


@base.picklable
def clip_by_norm(clipnorm: float) -> base.GradientTransformation:
    """Clips each gradient tensor to L2 norm at most ``clipnorm``.

    As ``tf.clip_by_norm(g, clipnorm)``::

        n = sqrt(sum(g * g))            (0 when the sum is 0)
        g = g * clipnorm / maximum(n, clipnorm)

    Args:
      clipnorm: a non-negative threshold.

    Returns:
      A stateless transform.
    """
    _check("clipnorm", clipnorm)

    def clip(g):
        sparse = isinstance(g, IndexedSlices)
        values = g.valid_values() if sparse else g
        c = _as(clipnorm, values.dtype)
        l2sum = jnp.sum(values * values, keepdims=True)
        pred = l2sum > 0
        l2norm = jnp.where(pred, jnp.sqrt(jnp.where(pred, l2sum, jnp.ones_like(l2sum))), l2sum)
        if sparse:
            return g.with_values((g.values * c) / jnp.maximum(l2norm, c))
        return (g * c) / jnp.maximum(l2norm, c)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args  # optax's extra arguments (value=loss): none is read here
        if contains_flat(updates):
            raise ValueError(
                "clip_by_norm clips each tensor, and a flat layout has no tensor boundaries: "
                "use clip_by_global_norm, or the tree layout."
            )
        # Of a row-sparse gradient TF takes the norm of its values, as stored
        # (duplicates not yet summed); padding rows do not count.
        with inlined_jnp(updates):
            return base.map_updates(clip, updates), state

    return base.GradientTransformation(lambda params: base.EmptyState(), update)


def _summed(updates, order: Sequence[int] | None) -> list:
    """The non-``None`` gradient leaves, in the order a global norm sums them:
    the tree's, or ``order`` (``order[k]`` the position, among those leaves, of the k-th one summed)."""
    leaves = [base.values_of(g) for g in jax.tree_util.tree_leaves(updates, is_leaf=base.is_none) if g is not None]
    if order is None:
        return leaves
    if sorted(order) != list(range(len(leaves))):
        raise ValueError(
            f"The global norm's order must name each of the {len(leaves)} gradients once; received {list(order)}."
        )
    return [leaves[i] for i in order]


def global_norm(updates, order: Sequence[int] | None = None) -> jax.Array:
    """``tf.linalg.global_norm``: ``sqrt(2 * sum_i l2_loss(g_i))``.

    ``l2_loss(g) = sum(g**2) / 2`` per tensor, in the tensor's dtype; the sum
    over tensors runs in their common dtype.  ``None`` leaves are skipped.

    Args:
      updates: a tree of gradients.
      order: the order of the sum over tensors (a permutation of the
        non-``None`` leaves' positions), where it must be Keras's variable
        order rather than the tree's: a flax tree flattens a layer's ``bias``
        before its ``kernel``, which Keras lists first, and a float sum in
        another order can round differently.  ``None``: the tree's order.
    """
    leaves = _summed(updates, order)
    if not leaves:
        return jnp.zeros([], jnp.float32)
    dtype = jnp.result_type(*leaves)
    with inlined_jnp(leaves):
        halves = jnp.stack([(jnp.sum(jnp.square(g) * jnp.asarray(0.5, g.dtype))).astype(dtype) for g in leaves])
        return jnp.sqrt(jnp.sum(halves) * jnp.asarray(2.0, dtype))


@base.picklable
def clip_by_global_norm(global_clipnorm: float, order: Sequence[int] | None = None) -> base.GradientTransformation:
    """Scales all gradients together so their global L2 norm is at most the threshold.

    As ``tf.clip_by_global_norm(grads, global_clipnorm)``::

        n = global_norm(grads)
        scale = global_clipnorm * minimum(1 / n, 1 / global_clipnorm)
        g_i = g_i * scale               (NaN everywhere if n is not finite)

    Args:
      global_clipnorm: a non-negative threshold.
      order: the order the norm sums the tensors in (see :func:`global_norm`).

    Returns:
      A stateless transform.
    """
    _check("global_clipnorm", global_clipnorm)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args  # optax's extra arguments (value=loss): none is read here
        norm = global_norm(updates, order)
        c = _as(global_clipnorm, norm.dtype)
        scale = c * jnp.minimum(1.0 / norm, jnp.asarray(1.0, norm.dtype) / c)
        scale = scale + (norm - norm)  # NaN when the norm is inf or NaN, as TF.
        with inlined_jnp(updates):
            return base.map_values(lambda g: g * scale.astype(g.dtype), updates), state

    return base.GradientTransformation(lambda params: base.EmptyState(), update)


@base.picklable
def clip_by_global_norm_keras3(global_clipnorm: float, order: Sequence[int] | None = None) -> base.GradientTransformation:
    """Keras 3's global-norm clipping (``BaseOptimizer._clip_by_global_norm``)::

        n = sqrt(sum_i sum(g_i**2))
        scale = global_clipnorm * minimum(1 / n, 1 / global_clipnorm)    (the second in double)
        g_i = g_i * scale               (NaN everywhere if n is not finite)

    ``n`` and ``scale`` are in the leaves' common dtype (float32 for a tree of
    float16 and float32 gradients); each ``g_i * scale`` is computed in the
    wider of the two and rounded once to ``g_i``'s dtype, as Keras 3's step
    casts the float32 product to a float16 variable's dtype.

    TF-Keras (:func:`clip_by_global_norm`) sums halves of squares and computes
    ``1 / global_clipnorm`` in float32; the two can differ in the last bit.
    ``order``: the order the norm sums the tensors in (see :func:`global_norm`).
    """
    _check("global_clipnorm", global_clipnorm)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args  # optax's extra arguments (value=loss): none is read here
        leaves = _summed(updates, order)
        if not leaves:
            return updates, state
        with inlined_jnp(leaves):
            norm = jnp.sqrt(jnp.sum(jnp.stack([jnp.sum(jnp.square(g)) for g in leaves])))
            scale = global_clipnorm * jnp.minimum(1.0 / norm, 1.0 / global_clipnorm)
            scale = scale + (norm - norm)  # NaN when the norm is inf or NaN, as Keras.
            # `g * scale` in their common dtype, then the gradient's (as each Keras 3 step casts it to the
            # variable's): a float16 gradient meets a float32 scale when the tree mixes dtypes.
            return base.map_values(lambda g: (g * scale).astype(g.dtype), updates), state

    return base.GradientTransformation(lambda params: base.EmptyState(), update)
