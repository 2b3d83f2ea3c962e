"""``ExponentialDecay``, in its three numerics."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_keras.schedules import _keras3 as k3
from jaxopt_keras.schedules._arith import _cast, _convert, _div, _float_dtype, _opaque, _runtime_zero, _step
from jaxopt_keras.schedules._grappler import reciprocal_mul
from jaxopt_keras.schedules.base import LearningRateSchedule


class ExponentialDecay(LearningRateSchedule):
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
        super().__init__(numerics)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def _tf_operands(self, step: Any) -> tuple[jax.Array, ...]:
        dtype = _float_dtype(self.initial_learning_rate, "ExponentialDecay")
        initial, decay_steps, decay_rate, s = _opaque(
            _convert(self.initial_learning_rate, dtype),
            _cast(self.decay_steps, dtype),
            _cast(self.decay_rate, dtype),
            _step(step, dtype),
        )
        return initial, decay_steps, decay_rate, s, _runtime_zero(s)

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
        initial = k3.initial_rate(self.initial_learning_rate, "ExponentialDecay")
        dtype = initial.dtype
        decay_steps = k3.cast(self.decay_steps, dtype)
        decay_rate = k3.cast(self.decay_rate, dtype)
        p = k3.cast(step, dtype) / decay_steps
        if self.staircase:
            p = jnp.floor(p)
        return jnp.multiply(initial, jnp.power(decay_rate, p))

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }
