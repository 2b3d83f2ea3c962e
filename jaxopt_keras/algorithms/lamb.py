"""Lamb: Adam's direction scaled per tensor by a trust ratio (Keras 3 only).

``keras.optimizers.Lamb`` (Keras 3.5+): the Adam moments with bias
corrections, then the step ``m_hat / (sqrt(v_hat) + epsilon)`` rescaled by
``||w|| / ||step||`` over the whole tensor (1 when either norm is 0).  The
norms need whole tensors, so Lamb does not run on the flat layout.  Weight
decay is the base class's decoupled decay before the step; the trust ratio
reads the decayed parameter.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_keras.algorithms.parts import Slot
from jaxopt_keras.algorithms.spec import Coefficients, Spec, one_minus
from jaxopt_keras.core.hyperparams import Derived
from jaxopt_keras.core.state import local_step


class LambSlots(NamedTuple):
    """First moment ``m`` (Keras 3: ``momentum``) and second moment ``v`` (``velocity``)."""

    m: Any
    v: Any


def trust_ratio(p: jax.Array, update: jax.Array) -> jax.Array:
    """``||p|| / ||update||`` over the whole tensor, 1 when either norm is 0.

    Keras 3's ``power(x, 2)`` has a concrete integer exponent, which JAX
    computes as ``x * x`` (``integer_pow``); ``jnp.power(x, 2)`` does the same.
    """
    w_norm = jnp.sqrt(jnp.sum(jnp.power(p, 2)))
    g_norm = jnp.sqrt(jnp.sum(jnp.power(update, 2)))
    return jnp.where(jnp.greater(w_norm, 0), jnp.where(jnp.greater(g_norm, 0), w_norm / g_norm, 1.0), 1.0)


def keras3_update(g: jax.Array, p: jax.Array, s: LambSlots, c: Coefficients):
    """One Lamb step (``keras.optimizers.Lamb.update_step``)::

        t = iterations + 1
        m = m + (g - m) * (1 - beta_1)                  (1 - beta_1 in double)
        v = v + (g**2 - v) * (1 - beta_2)
        update = (m / (1 - beta_1**t)) / (sqrt(v / (1 - beta_2**t)) + epsilon)
        ratio = ||p|| / ||update||  (whole tensor; 1 if either is 0)
        p = p - (ratio * lr) * update
    """
    t = local_step(c.iterations, 1, g.dtype)
    beta_1_power = jnp.power(c.beta_1, t)
    beta_2_power = jnp.power(c.beta_2, t)
    m = s.m + (g - s.m) * c.one_minus_beta_1
    v = s.v + (jnp.square(g) - s.v) * c.one_minus_beta_2
    m_t_hat = m / (1.0 - beta_1_power)
    v_sqrt = jnp.sqrt(v / (1.0 - beta_2_power)) + c.epsilon
    update = m_t_hat / v_sqrt
    return -((trust_ratio(p, update) * c.learning_rate) * update), LambSlots(m, v)


KERAS3 = Spec(
    family="keras3",
    singular={"beta_1": 1.0, "beta_2": 1.0},
    defaults={"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    float32_hyperparams=("beta_1", "beta_2"),  # ops.cast(self.beta_1, dtype)
    exact_hyperparams=("epsilon",),
    derived=(Derived("one_minus_beta_1", "beta_1", one_minus), Derived("one_minus_beta_2", "beta_2", one_minus)),
    slots_type=LambSlots,
    slots=(Slot("m"), Slot("v")),
    slot_order=(("m", "v"),),
    slot_names={"m": "momentum", "v": "velocity"},
    update=keras3_update,
    needs_params=True,
    elementwise=False,
)
