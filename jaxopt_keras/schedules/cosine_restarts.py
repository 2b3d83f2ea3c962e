"""``CosineDecayRestarts`` (SGDR), in its three numerics."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.schedules import _keras3 as k3
from jaxopt_keras.schedules._arith import (
    _cast,
    _c_log,
    _cast_np,
    _convert,
    _div,
    _float_dtype,
    _log,
    _mul,
    _mul_add,
    _opaque,
    _runtime_zero,
    _step,
)
from jaxopt_keras.schedules._grappler import reciprocal_mul
from jaxopt_keras.schedules.base import LearningRateSchedule, checked_steps


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
      numerics: ``None`` (the optimizer decides), ``"tf_function"``,
        ``"tf_eager"`` or ``"keras3"`` (:mod:`jaxopt_keras.schedules.base`).
    """

    def __init__(
        self,
        initial_learning_rate,
        first_decay_steps,
        t_mul=2.0,
        m_mul=1.0,
        alpha=0.0,
        name=None,
        *,
        numerics=None,
    ):
        super().__init__(numerics)
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = checked_steps("first_decay_steps", first_decay_steps)
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name

    def _tf_operands(self, step: Any) -> tuple[Any, ...]:
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
        return geometric, initial, first, alpha, t_mul, m_mul, pi, s, _runtime_zero(s)

    def _log_t_mul(self, dtype: Any, graph: bool) -> tuple[np.ndarray, np.ndarray]:
        """TF's log(t_mul), and log_arg at the first restart (step == first_decay_steps).

        Where the floor of log(log_arg) / log(t_mul) lands on 1, the last bit
        of each log decides the restart; TF's kernel computes them with the C
        library, XLA's log differs (`_arith._log`).
        """
        first, t_mul = _cast_np(self.first_decay_steps, dtype), _cast_np(self._t_mul, dtype)
        one = np.ones((), dtype)
        fraction = first * (one / first) if graph else first / first
        return _c_log(t_mul), one - fraction * (one - t_mul)

    def _tf_eager(self, step: Any) -> jax.Array:
        geometric, initial, first, alpha, t_mul, m_mul, pi, s, zero = self._tf_operands(step)
        fraction = _div(s, first, zero)
        if not geometric:
            i_restart = jnp.floor(fraction)
            fraction = fraction - i_restart
        else:
            # 1 - fraction * (1 - t_mul), without an FMA.
            log_arg = _mul_add(-fraction, 1.0 - t_mul, jnp.ones_like(s), zero)
            log_t, first_arg = self._log_t_mul(s.dtype, graph=False)
            i_restart = jnp.floor(_div(_log(log_arg, first_arg), jnp.asarray(log_t), zero))
            # Hidden, or XLA rewrites `x / t_mul**i` as `x * t_mul**-i`.
            (t_pow,) = _opaque(t_mul**i_restart)
            sum_r = _div(1.0 - t_pow, 1.0 - t_mul, zero)
            fraction = _div(fraction - sum_r, t_pow, zero)
        m_fac = m_mul**i_restart
        cosine = 0.5 * m_fac * (1.0 + jnp.cos(pi * fraction))
        decayed = _mul_add(1 - alpha, cosine, alpha, zero)
        return initial * decayed

    def _tf_function(self, step: Any) -> jax.Array:
        # The tf.cond's predicate is folded and its branch inlined, so the
        # rewrites reach into it.
        geometric, initial, first, alpha, t_mul, m_mul, pi, s, zero = self._tf_operands(step)
        fraction = reciprocal_mul(s, first, zero)  # k * first * fl(1/first) may floor to k - 1: a late restart
        if not geometric:
            i_restart = jnp.floor(fraction)
            fraction = fraction - i_restart
        else:
            one_minus_t = 1.0 - t_mul  # folded
            log_arg = 1.0 - _mul(fraction, one_minus_t, zero)
            log_t, first_arg = self._log_t_mul(s.dtype, graph=True)  # log(t_mul) folded by TF's kernel
            i_restart = jnp.floor(_mul(_log(log_arg, first_arg), jnp.asarray(1 / log_t), zero))
            (t_pow,) = _opaque(t_mul**i_restart)
            sum_r = _mul(1.0 - t_pow, 1.0 / one_minus_t, zero)
            fraction = _div(fraction - sum_r, t_pow, zero)  # not a constant: a true division
        m_fac = m_mul**i_restart
        c = jnp.cos(pi * fraction) + 1.0
        if float(_cast_np(self.alpha, s.dtype)) == 0:
            # `* 1` and `+ 0` dropped; initial * ((0.5 * m_fac) * c) pushed down: c * (m_fac * fl(0.5 * initial)).
            return c * _mul(m_fac, 0.5 * initial, zero)
        # (1 - alpha) * ((0.5 * m_fac) * c) pushed down: c * (m_fac * fl((1 - alpha) * 0.5)).
        k = (1.0 - alpha) * 0.5
        return (_mul(c, _mul(m_fac, k, zero), zero) + alpha) * initial

    def _keras3(self, step: Any) -> jax.Array:
        initial = k3.initial_rate(self.initial_learning_rate, "CosineDecayRestarts")
        dtype = initial.dtype
        first_decay_steps = k3.cast(self.first_decay_steps, dtype)
        alpha = k3.cast(self.alpha, dtype)
        t_mul = k3.cast(self._t_mul, dtype)
        m_mul = k3.cast(self._m_mul, dtype)
        completed_fraction = k3.cast(step, dtype) / first_decay_steps

        def compute_step(completed_fraction, geometric):
            if geometric:
                i_restart = jnp.floor(
                    k3.unary_float(jnp.log(k3.cast(1.0 - completed_fraction * (1.0 - t_mul), dtype)) / jnp.log(t_mul))
                )
                sum_r = jnp.divide(1.0 - jnp.power(t_mul, i_restart), (1.0 - t_mul))
                completed_fraction = jnp.divide(
                    jnp.subtract(completed_fraction, sum_r), jnp.power(t_mul, i_restart)
                )
            else:
                i_restart = jnp.floor(k3.unary_float(completed_fraction))
                completed_fraction -= i_restart
            return i_restart, completed_fraction

        i_restart, completed_fraction = jax.lax.cond(
            jnp.equal(t_mul, 1.0),
            lambda: compute_step(completed_fraction, geometric=False),
            lambda: compute_step(completed_fraction, geometric=True),
        )
        m_fac = jnp.power(m_mul, i_restart)
        cosine = 0.5 * m_fac * (1.0 + jnp.cos(k3.unary_float(jnp.multiply(jnp.array(math.pi, dtype=dtype), completed_fraction))))
        decayed = jnp.add(jnp.multiply((1 - alpha), cosine), alpha)
        return jnp.multiply(initial, decayed)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self._t_mul,
            "m_mul": self._m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }
