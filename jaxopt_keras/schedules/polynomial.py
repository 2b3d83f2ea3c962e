"""``PolynomialDecay``, in its three numerics."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_keras.schedules import _keras3 as k3
from jaxopt_keras.schedules._arith import (
    _cast,
    _cast_np,
    _convert,
    _div,
    _float_dtype,
    _mul,
    _mul_add,
    _opaque,
    _pow,
    _runtime_zero,
    _step,
)
from jaxopt_keras.schedules._grappler import convert_pow, reciprocal_mul
from jaxopt_keras.schedules.base import LearningRateSchedule, checked_steps


class PolynomialDecay(LearningRateSchedule):
    """``(lr0 - end) * (1 - step / decay_steps) ** power + end``.

    ``step`` is clipped to ``decay_steps``; with ``cycle=True`` the horizon
    grows instead to ``decay_steps * ceil(step / decay_steps)``.

    Args:
      initial_learning_rate: ``lr0``.
      decay_steps: the horizon.
      end_learning_rate: the final rate.
      power: the polynomial's power.
      cycle: restart beyond ``decay_steps``.
      name: kept for the config.
      numerics: ``None`` (the optimizer decides), ``"tf_function"``,
        ``"tf_eager"`` or ``"keras3"`` (:mod:`jaxopt_keras.schedules.base`).
    """

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        end_learning_rate=0.0001,
        power=1.0,
        cycle=False,
        name=None,
        *,
        numerics=None,
    ):
        super().__init__(numerics)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = checked_steps("decay_steps", decay_steps)
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def _tf_operands(self, step: Any) -> tuple[jax.Array, ...]:
        dtype = _float_dtype(self.initial_learning_rate, "PolynomialDecay")
        # With cycle=True, TF divides by the Python `self.decay_steps` in
        # `ceil(step / decay_steps)`: converted, not cast (`raw_decay_steps`).
        initial, end, power, s, decay_steps, raw_decay_steps = _opaque(
            _convert(self.initial_learning_rate, dtype),
            _cast(self.end_learning_rate, dtype),
            _cast(self.power, dtype),
            _step(step, dtype),
            _cast(self.decay_steps, dtype),
            _convert(self.decay_steps, dtype),
        )
        return initial, end, power, s, decay_steps, raw_decay_steps, _runtime_zero(s)

    def _tf_eager(self, step: Any) -> jax.Array:
        initial, end, power, s, decay_steps, raw_decay_steps, zero = self._tf_operands(step)
        if self.cycle:
            # The first multiple of decay_steps above step.
            multiplier = jnp.where(s == 0, jnp.ones_like(s), jnp.ceil(_div(s, raw_decay_steps, zero)))
            decay_steps = decay_steps * multiplier
        else:
            s = jnp.minimum(s, decay_steps)
        p = _div(s, decay_steps, zero)
        return _mul_add(initial - end, _pow(1 - p, power, zero), end, zero)

    def _tf_function(self, step: Any) -> jax.Array:
        initial, end, power, s, decay_steps, raw_decay_steps, zero = self._tf_operands(step)
        if self.cycle:
            # ceil(k * decay_steps * fl(1/decay_steps)) may be k + 1: a cycle one step late.
            multiplier = jnp.where(s == 0, jnp.ones_like(s), jnp.ceil(reciprocal_mul(s, raw_decay_steps, zero)))
            p = _div(s, decay_steps * multiplier, zero)  # not a constant: a true division
        else:
            p = reciprocal_mul(jnp.minimum(s, decay_steps), decay_steps, zero)
        q = 1 - p
        k = initial - end
        exponent = float(_cast_np(self.power, s.dtype))
        if exponent == 3:
            # ConvertPow gives Mul(q, Square(q)); its inputs sorted by name put
            # Square first, then ConstantPushDown: k * (sq * q) -> sq * (k * q).
            decayed = _mul(_mul(q, q, zero), _mul(k, q, zero), zero)
        else:
            decayed = _mul(k, convert_pow(q, exponent, power, zero), zero)
        return decayed + end

    def _keras3(self, step: Any) -> jax.Array:
        initial = k3.initial_rate(self.initial_learning_rate, "PolynomialDecay")
        dtype = initial.dtype
        end = k3.cast(self.end_learning_rate, dtype)
        power = k3.cast(self.power, dtype)
        s = k3.cast(step, dtype)
        decay_steps = k3.cast(self.decay_steps, dtype)
        if self.cycle:
            multiplier = jnp.where(jnp.equal(s, 0), 1.0, jnp.ceil(k3.unary_float(s / self.decay_steps)))  # ops.ceil
            decay_steps = jnp.multiply(decay_steps, multiplier)
        else:
            s = jnp.minimum(s, decay_steps)
        p = jnp.divide(s, decay_steps)
        return jnp.add(jnp.multiply(initial - end, jnp.power(1 - p, power)), end)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }
