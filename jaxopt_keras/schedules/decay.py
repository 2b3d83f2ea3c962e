"""The six TF-Keras schedules (``tf.keras.optimizers.schedules``)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jaxopt_keras.schedules._arith import (
    _boundary,
    _cast,
    _cast_np,
    _convert,
    _div,
    _float_dtype,
    _mul_add,
    _opaque,
    _runtime_zero,
    _step,
    _tensor_dtype,
)
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
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step: Any) -> jax.Array:
        dtype = _float_dtype(self.initial_learning_rate, "ExponentialDecay")
        initial, decay_steps, decay_rate, s = _opaque(
            _convert(self.initial_learning_rate, dtype),
            _cast(self.decay_steps, dtype),
            _cast(self.decay_rate, dtype),
            _step(step, dtype),
        )
        p = _div(s, decay_steps, _runtime_zero(s))
        if self.staircase:
            p = jnp.floor(p)
        return initial * jnp.power(decay_rate, p)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[i]`` for ``boundaries[i-1] < step <= boundaries[i]``.

    ``values[0]`` up to and including ``boundaries[0]``, ``values[-1]`` after
    ``boundaries[-1]``.  As in TF-Keras, boundaries are cast to the step's
    dtype before comparing.

    Args:
      boundaries: increasing step boundaries.
      values: one more value than boundaries.
      name: kept for the config.

    Raises:
      ValueError: ``len(boundaries) != len(values) - 1``.
    """

    def __init__(self, boundaries: Sequence, values: Sequence, name=None):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}."
            )
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step: Any) -> jax.Array:
        x = jnp.asarray(step)
        values = [_convert(v, _tensor_dtype(v)) for v in self.values]
        out_dtype = values[0].dtype
        bounds = [_boundary(b, x.dtype) for b in self.boundaries]
        result = values[0]
        # Walk from the top: the first matching interval wins, as in tf.case.
        result = jnp.where(x > bounds[-1], values[-1].astype(out_dtype), result)
        for low, high, v in zip(bounds[:-1], bounds[1:], values[1:-1]):
            result = jnp.where((x > low) & (x <= high), v.astype(out_dtype), result)
        return jnp.where(x <= bounds[0], values[0], result)

    def get_config(self) -> dict:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


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
    """

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        end_learning_rate=0.0001,
        power=1.0,
        cycle=False,
        name=None,
    ):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def __call__(self, step: Any) -> jax.Array:
        dtype = _float_dtype(self.initial_learning_rate, "PolynomialDecay")
        initial, end, power, s, decay_steps = _opaque(
            _convert(self.initial_learning_rate, dtype),
            _cast(self.end_learning_rate, dtype),
            _cast(self.power, dtype),
            _step(step, dtype),
            _cast(self.decay_steps, dtype),
        )
        zero = _runtime_zero(s)
        if self.cycle:
            # The first multiple of decay_steps above step.  TF divides by the
            # Python `self.decay_steps` here (converted, not cast).
            (raw_decay_steps,) = _opaque(_convert(self.decay_steps, dtype))
            multiplier = jnp.where(s == 0, jnp.asarray(1.0, dtype), jnp.ceil(_div(s, raw_decay_steps, zero)))
            decay_steps = decay_steps * multiplier
        else:
            s = jnp.minimum(s, decay_steps)
        p = _div(s, decay_steps, zero)
        return _mul_add(initial - end, jnp.power(1 - p, power), end, zero)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class InverseTimeDecay(LearningRateSchedule):
    """``lr0 / (1 + decay_rate * step / decay_steps)``.

    With ``staircase=True``, ``step / decay_steps`` is floored.

    Args:
      initial_learning_rate: ``lr0``.
      decay_steps: steps per unit of decay.
      decay_rate: the decay rate.
      staircase: decay in discrete intervals.
      name: kept for the config.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step: Any) -> jax.Array:
        dtype = _float_dtype(self.initial_learning_rate, "InverseTimeDecay")
        initial, decay_steps, decay_rate, s = _opaque(
            _convert(self.initial_learning_rate, dtype),
            _cast(self.decay_steps, dtype),
            _cast(self.decay_rate, dtype),
            _step(step, dtype),
        )
        zero = _runtime_zero(s)
        p = _div(s, decay_steps, zero)
        if self.staircase:
            p = jnp.floor(p)
        denom = _mul_add(decay_rate, p, jnp.asarray(1, dtype), zero)
        return _div(initial, denom, zero)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class CosineDecay(LearningRateSchedule):
    """Cosine decay, optionally after a linear warmup.

    Without warmup (``warmup_target=None``)::

        s = min(step, decay_steps)
        lr = lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)

    With warmup, the rate rises linearly from ``lr0`` to ``warmup_target`` over
    ``warmup_steps``, then decays from ``warmup_target`` as above.

    Args:
      initial_learning_rate: ``lr0``.
      decay_steps: length of the decay.
      alpha: the floor, as a fraction of the peak rate.
      name: kept for the config.
      warmup_target: the rate reached after warmup, or ``None`` for no warmup.
      warmup_steps: length of the warmup.
    """

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        alpha=0.0,
        name=None,
        warmup_target=None,
        warmup_steps=0,
    ):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target

    @staticmethod
    def _decay(s, decay_steps, peak, one_minus_alpha, alpha, pi, zero):
        fraction = _div(s, decay_steps, zero)
        cosine = 0.5 * (1.0 + jnp.cos(pi * fraction))
        decayed = _mul_add(one_minus_alpha, cosine, alpha, zero)
        return peak * decayed

    def __call__(self, step: Any) -> jax.Array:
        dtype = _float_dtype(self.initial_learning_rate, "CosineDecay")
        # TF-Keras computes `(1 - self.alpha) * cosine + self.alpha` with Python
        # numbers, converted straight to `dtype` (no float32 detour).
        initial, decay_steps, one_minus_alpha, alpha, pi, s = _opaque(
            _convert(self.initial_learning_rate, dtype),
            _cast(self.decay_steps, dtype),
            _convert(1 - self.alpha, dtype),
            _convert(self.alpha, dtype),
            _convert(math.pi, dtype),
            _step(step, dtype),
        )
        zero = _runtime_zero(s)
        if self.warmup_target is None:
            s = jnp.minimum(s, decay_steps)
            return self._decay(s, decay_steps, initial, one_minus_alpha, alpha, pi, zero)
        target, warmup_steps = _opaque(
            _cast(self.warmup_target, dtype), _cast(self.warmup_steps, dtype)
        )
        s = jnp.minimum(s, decay_steps + warmup_steps)
        # TF's tf.cond picks one branch; both are computed here, the other discarded.
        warm = _mul_add(target - initial, _div(s, warmup_steps, zero), initial, zero)
        cool = self._decay(s - warmup_steps, decay_steps, target, one_minus_alpha, alpha, pi, zero)
        return jnp.where(s < warmup_steps, warm, cool)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR).

    Period ``i`` lasts ``first_decay_steps * t_mul**i`` steps and peaks at
    ``lr0 * m_mul**i``; within a period at fraction ``f``::

        lr = lr0 * ((1 - alpha) * 0.5 * m_mul**i * (1 + cos(pi * f)) + alpha)

    Args:
      initial_learning_rate: ``lr0``.
      first_decay_steps: length of the first period.
      t_mul: growth of the period length.
      m_mul: growth of the peak rate.
      alpha: the floor, as a fraction of ``lr0``.
      name: kept for the config.
    """

    def __init__(
        self,
        initial_learning_rate,
        first_decay_steps,
        t_mul=2.0,
        m_mul=1.0,
        alpha=0.0,
        name=None,
    ):
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name

    def __call__(self, step: Any) -> jax.Array:
        dtype = _float_dtype(self.initial_learning_rate, "CosineDecayRestarts")
        # TF's tf.cond(t_mul == 1.0, ...) on the cast value, decided here when
        # tracing (so `t_mul` cannot be a traced value).
        geometric = not bool(_cast_np(self._t_mul, dtype) == 1.0)
        initial, first, alpha, t_mul, m_mul, pi, s = _opaque(
            _convert(self.initial_learning_rate, dtype),
            _cast(self.first_decay_steps, dtype),
            _cast(self.alpha, dtype),
            _cast(self._t_mul, dtype),
            _cast(self._m_mul, dtype),
            _convert(math.pi, dtype),
            _step(step, dtype),
        )
        zero = _runtime_zero(s)
        fraction = _div(s, first, zero)
        if not geometric:
            i_restart = jnp.floor(fraction)
            fraction = fraction - i_restart
        else:
            # 1 - fraction * (1 - t_mul), without an FMA.
            log_arg = _mul_add(-fraction, 1.0 - t_mul, jnp.asarray(1.0, dtype), zero)
            i_restart = jnp.floor(_div(jnp.log(log_arg), jnp.log(t_mul), zero))
            # Hidden, or XLA rewrites `x / t_mul**i` as `x * t_mul**-i`.
            (t_pow,) = _opaque(t_mul**i_restart)
            sum_r = _div(1.0 - t_pow, 1.0 - t_mul, zero)
            fraction = _div(fraction - sum_r, t_pow, zero)
        m_fac = m_mul**i_restart
        cosine = 0.5 * m_fac * (1.0 + jnp.cos(pi * fraction))
        decayed = _mul_add(1 - alpha, cosine, alpha, zero)
        return initial * decayed

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self._t_mul,
            "m_mul": self._m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }
