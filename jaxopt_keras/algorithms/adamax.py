"""Adamax, the infinity-norm variant of Adam.

* legacy: ``ResourceApplyAdaMax``; slots ``m``, ``v``; float32 betas.
* current: slots ``m``, ``u``; ``beta_1`` goes through ``tf.cast`` for the
  bias correction while ``1 - beta_1`` and ``beta_2 * u`` use the Python
  floats.
"""

from __future__ import annotations

import dataclasses

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_keras.algorithms.parts import STEP, Prepared, Slot, complement
from jaxopt_keras.algorithms.spec import Coefficients, Spec, legacy_epsilon, one_minus
from jaxopt_keras.core.sparse import IndexedSlices, gather, scatter_add, scatter_set
from jaxopt_keras.core.hyperparams import Derived


class LegacyAdamaxSlots(NamedTuple):
    """Legacy Adamax: first moment ``m``, infinity norm ``v``."""

    m: Any
    v: Any


class AdamaxSlots(NamedTuple):
    """Current Adamax: first moment ``m``, infinity norm ``u``."""

    m: Any
    u: Any


def legacy_update(g: jax.Array, p: jax.Array | None, s: LegacyAdamaxSlots, c: Coefficients):
    """One legacy Adamax step::

        m = m + (g - m) * (1 - beta_1)
        v = max(beta_2 * v, |g|)
        p = p - lr / (1 - beta_1**t) * (m / (v + epsilon))

    ``1 - beta_1`` and ``lr / (1 - beta_1**t)`` are prepared once per step
    and dtype (:data:`LEGACY`).
    """
    m = s.m + (g - s.m) * c.one_minus_beta_1
    v = jnp.maximum(c.beta_2 * s.v, jnp.abs(g))
    return -(c.scaled_lr * (m / (v + c.epsilon))), LegacyAdamaxSlots(m, v)


def current_update(g: jax.Array, p: jax.Array | None, s: AdamaxSlots, c: Coefficients):
    """One current-family Adamax step::

        m = m + (g - m) * (1 - beta_1)
        u = max(beta_2 * u, |g|)
        p = p - lr * m / ((1 - beta_1**t) * (u + epsilon))

    ``1 - beta_1**t`` is prepared once per step and dtype (:data:`CURRENT`).
    """
    m = s.m + (g - s.m) * c.one_minus_beta_1
    u = jnp.maximum(c.beta_2 * s.u, jnp.abs(g))
    return -(c.learning_rate * m / (c.bias_correction * (u + c.epsilon))), AdamaxSlots(m, u)


def legacy_sparse_update(g: IndexedSlices, p, s: LegacyAdamaxSlots, c: Coefficients):
    """Legacy Adamax on rows only::

        m[i] = m[i] * beta_1 + g_i * (1 - beta_1) ;  v[i] = max(v[i] * beta_2, |g_i|)
        p[i] += -lr / (1 - beta_1**t) * (m[i] / (v[i] + epsilon))
    """
    idx, gv = g.indices, g.values
    neg_scaled_lr = -c.learning_rate / (1 - c.beta_1**c.t)
    m_rows = gather(s.m, idx) * c.beta_1 + gv * (1 - c.beta_1)
    v_rows = jnp.maximum(gather(s.v, idx) * c.beta_2, jnp.abs(gv))
    rows = neg_scaled_lr * (m_rows / (v_rows + c.epsilon))
    return g.with_values(rows), LegacyAdamaxSlots(scatter_set(s.m, idx, m_rows), scatter_set(s.v, idx, v_rows))


def current_sparse_update(g: IndexedSlices, p, s: AdamaxSlots, c: Coefficients):
    """Current-family Adamax on rows: ``m`` and ``u`` decay everywhere::

        m = m - m * (1 - beta_1) ; m[i] += g_i * (1 - beta_1)
        u = u * beta_2 ; u[i] += max(u[i], |g_i|) - u[i]
        p = p - lr * m / ((1 - beta_1**t) * (u + epsilon))
    """
    idx, gv = g.indices, g.values
    m = scatter_add(s.m + -s.m * c.one_minus_beta_1, idx, gv * c.one_minus_beta_1)
    u = s.u * c.beta_2
    u_rows = gather(u, idx)
    u = scatter_add(u, idx, jnp.maximum(u_rows, jnp.abs(gv)) - u_rows)
    return -(c.learning_rate * m / (c.bias_correction * (u + c.epsilon))), AdamaxSlots(m, u)


def legacy_scaled_lr(c: Coefficients) -> jax.Array:
    """``lr / (1 - beta_1**t)``."""
    return c.learning_rate / (1 - c.beta_1**c.t)


def bias_correction(c: Coefficients) -> jax.Array:
    """``1 - beta_1**t``."""
    return 1 - c.beta_1**c.t

LEGACY = Spec(
    family="legacy",
    singular={"beta_1": 1.0},
    defaults={"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    float32_hyperparams=("beta_1", "beta_2"),
    exact_hyperparams=("epsilon",),
    slots_type=LegacyAdamaxSlots,
    slots=(Slot("m"), Slot("v")),
    slot_order=(("m",), ("v",)),
    update=legacy_update,
    prepare=(STEP, complement("beta_1"), Prepared("scaled_lr", legacy_scaled_lr)),
    sparse_update=legacy_sparse_update,
    time_decay=True,
    check_args=legacy_epsilon,
)

CURRENT = Spec(
    family="current",
    singular={"beta_1": 1.0},
    defaults={"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    float32_hyperparams=("beta_1",),  # tf.cast(self.beta_1, dtype) in the power
    exact_hyperparams=("beta_2", "epsilon"),
    derived=(Derived("one_minus_beta_1", "beta_1", one_minus),),
    slots_type=AdamaxSlots,
    slots=(Slot("m"), Slot("u")),
    slot_order=(("m", "u"),),
    update=current_update,
    prepare=(STEP, Prepared("bias_correction", bias_correction)),
    sparse_update=current_sparse_update,
)


KERAS3 = dataclasses.replace(
    CURRENT, family="keras3", slot_names={"m": "momentum", "u": "norm"}, sparse_update=None
)
