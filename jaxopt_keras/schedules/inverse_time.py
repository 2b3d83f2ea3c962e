"""``InverseTimeDecay``, in its three numerics."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_keras.schedules import _keras3 as k3
from jaxopt_keras.schedules._arith import _div, _mul, _mul_add
from jaxopt_keras.schedules._grappler import reciprocal_mul
from jaxopt_keras.schedules._rate_decay import RateDecay


class InverseTimeDecay(RateDecay):
    """``lr0 / (1 + decay_rate * step / decay_steps)``.

    With ``staircase=True``, ``step / decay_steps`` is floored.

    Args:
      initial_learning_rate: ``lr0``.
      decay_steps: steps per unit of decay.
      decay_rate: the decay rate.
      staircase: decay in discrete intervals.
      name: kept for the config.
      numerics: ``None`` (the optimizer decides), ``"tf_function"``,
        ``"tf_eager"`` or ``"keras3"`` (:mod:`jaxopt_keras.schedules.base`).
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None, *, numerics=None):
        # Its own, not RateDecay's: a wrong call is named as Keras names it ("InverseTimeDecay.__init__() missing ...").
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name, numerics=numerics)

    def _tf_eager(self, step: Any) -> jax.Array:
        initial, decay_steps, decay_rate, s, zero = self._tf_operands(step)
        p = _div(s, decay_steps, zero)
        if self.staircase:
            p = jnp.floor(p)
        denom = _mul_add(decay_rate, p, jnp.ones_like(s), zero)
        return _div(initial, denom, zero)

    def _tf_function(self, step: Any) -> jax.Array:
        initial, decay_steps, decay_rate, s, zero = self._tf_operands(step)
        if self.staircase:
            t = _mul(decay_rate, jnp.floor(reciprocal_mul(s, decay_steps, zero)), zero)
        else:
            # decay_rate * (s * fl(1/decay_steps)) pushed down: s * fl(decay_rate * fl(1/decay_steps)).
            t = _mul(s, decay_rate * (1.0 / decay_steps), zero)
        return _div(initial, 1 + t, zero)

    def _keras3(self, step: Any) -> jax.Array:
        initial, decay_rate, p = self._keras3_operands(step)
        const = k3.cast(jnp.array(1), initial.dtype)
        denom = jnp.add(const, jnp.multiply(decay_rate, p))
        return jnp.divide(initial, denom)
