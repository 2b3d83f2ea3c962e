"""``InverseTimeDecay``, in its three numerics."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_keras.schedules import _keras3 as k3
from jaxopt_keras.schedules._arith import (
    _cast,
    _convert,
    _div,
    _float_dtype,
    _mul,
    _mul_add,
    _opaque,
    _runtime_zero,
    _step,
)
from jaxopt_keras.schedules._grappler import reciprocal_mul
from jaxopt_keras.schedules.base import LearningRateSchedule


class InverseTimeDecay(LearningRateSchedule):
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
        super().__init__(numerics)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def _tf_operands(self, step: Any) -> tuple[jax.Array, ...]:
        dtype = _float_dtype(self.initial_learning_rate, "InverseTimeDecay")
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
        initial = k3.initial_rate(self.initial_learning_rate, "InverseTimeDecay")
        dtype = initial.dtype
        decay_steps = k3.cast(self.decay_steps, dtype)
        decay_rate = k3.cast(self.decay_rate, dtype)
        p = k3.cast(step, dtype) / decay_steps
        if self.staircase:
            p = jnp.floor(p)
        const = k3.cast(jnp.array(1), dtype)
        denom = jnp.add(const, jnp.multiply(decay_rate, p))
        return jnp.divide(initial, denom)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }
