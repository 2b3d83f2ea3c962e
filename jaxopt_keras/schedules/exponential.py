"""``ExponentialDecay``, in its three numerics."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_keras.schedules._arith import _div
from jaxopt_keras.schedules._grappler import reciprocal_mul
from jaxopt_keras.schedules._rate_decay import RateDecay


class ExponentialDecay(RateDecay):
    """``lr(step) = initial_learning_rate * decay_rate ** (step / decay_steps)``.

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)``.

    Args:
      initial_learning_rate: the rate at step 0.
      decay_steps: steps per factor of ``decay_rate``.
      decay_rate: the decay factor.
      staircase: decay in discrete intervals.
      name: kept for the config.
      numerics: ``None`` (the optimizer decides), ``"tf_function"``,
        ``"tf_eager"`` or ``"keras3"`` (:mod:`jaxopt_keras.schedules.base`).
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None, *, numerics=None):
        # Its own, not RateDecay's: a wrong call is named as Keras names it ("ExponentialDecay.__init__() missing ...").
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name, numerics=numerics)

    def _tf_eager(self, step: Any) -> jax.Array:
        initial, decay_steps, decay_rate, s, zero = self._tf_operands(step)
        p = _div(s, decay_steps, zero)
        if self.staircase:
            p = jnp.floor(p)
        return initial * jnp.power(decay_rate, p)

    def _tf_function(self, step: Any) -> jax.Array:
        initial, decay_steps, decay_rate, s, zero = self._tf_operands(step)
        p = reciprocal_mul(s, decay_steps, zero)  # a boundary k * decay_steps may floor to k - 1
        if self.staircase:
            p = jnp.floor(p)
        return initial * jnp.power(decay_rate, p)

    def _keras3(self, step: Any) -> jax.Array:
        initial, decay_rate, p = self._keras3_operands(step)
        return jnp.multiply(initial, jnp.power(decay_rate, p))
