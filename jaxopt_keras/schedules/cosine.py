"""``CosineDecay``, in its three numerics."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

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
from jaxopt_keras.schedules.base import LearningRateSchedule, checked_steps


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
      numerics: ``None`` (the optimizer decides), ``"tf_function"``,
        ``"tf_eager"`` or ``"keras3"`` (:mod:`jaxopt_keras.schedules.base`).
    """

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        alpha=0.0,
        name=None,
        warmup_target=None,
        warmup_steps=0,
        *,
        numerics=None,
    ):
        super().__init__(numerics)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = checked_steps("decay_steps", decay_steps)
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target

    def _tf_operands(self, step: Any) -> tuple[jax.Array, ...]:
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
        return initial, decay_steps, one_minus_alpha, alpha, pi, s, _runtime_zero(s)

    @staticmethod
    def _decay(s, decay_steps, peak, one_minus_alpha, alpha, pi, zero):
        fraction = _div(s, decay_steps, zero)
        cosine = 0.5 * (1.0 + jnp.cos(pi * fraction))
        decayed = _mul_add(one_minus_alpha, cosine, alpha, zero)
        return peak * decayed

    def _tf_eager(self, step: Any) -> jax.Array:
        initial, decay_steps, one_minus_alpha, alpha, pi, s, zero = self._tf_operands(step)
        if self.warmup_target is None:
            s = jnp.minimum(s, decay_steps)
            return self._decay(s, decay_steps, initial, one_minus_alpha, alpha, pi, zero)
        target, warmup_steps = _opaque(_cast(self.warmup_target, s.dtype), _cast(self.warmup_steps, s.dtype))
        s = jnp.minimum(s, decay_steps + warmup_steps)
        # TF's tf.cond picks one branch; both are computed here, the other discarded.
        warm = _mul_add(target - initial, _div(s, warmup_steps, zero), initial, zero)
        cool = self._decay(s - warmup_steps, decay_steps, target, one_minus_alpha, alpha, pi, zero)
        return jnp.where(s < warmup_steps, warm, cool)

    def _tf_function(self, step: Any) -> jax.Array:
        if self.warmup_target is not None:
            # The tf.cond branches get their constants through Switch nodes:
            # grappler rewrites nothing there.
            return self._tf_eager(step)
        initial, decay_steps, one_minus_alpha, alpha, pi, s, zero = self._tf_operands(step)
        # pi * (s * fl(1/decay_steps)) pushed down: s * fl(pi * fl(1/decay_steps)).
        c = jnp.cos(_mul(jnp.minimum(s, decay_steps), pi * (1.0 / decay_steps), zero)) + 1
        # (1 - alpha) * (0.5 * c) pushed down: c * fl((1 - alpha) * 0.5).
        k = one_minus_alpha * 0.5
        if float(np.asarray(self.alpha, s.dtype)) == 0:
            # `* 1` and `+ 0` dropped, then initial * (c * k) pushed down: c * fl(initial * k).
            return c * (initial * k)
        return initial * (_mul(c, k, zero) + alpha)

    def _keras3(self, step: Any) -> jax.Array:
        initial = k3.initial_rate(self.initial_learning_rate, "CosineDecay")
        dtype = initial.dtype
        decay_steps = k3.cast(self.decay_steps, dtype)
        s = k3.cast(step, dtype)
        if self.warmup_target is None:
            return self._keras3_decay(jnp.minimum(s, decay_steps), decay_steps, initial, dtype)
        warmup_target = k3.cast(self.warmup_target, dtype)
        warmup_steps = k3.cast(self.warmup_steps, dtype)
        s = jnp.minimum(s, decay_steps + warmup_steps)

        def warm():
            return (warmup_target - initial) * (s / warmup_steps) + initial

        def cool():
            return self._keras3_decay(s - warmup_steps, decay_steps, warmup_target, dtype)

        return jax.lax.cond(s < warmup_steps, warm, cool)

    def _keras3_decay(self, s, decay_steps, peak, dtype):
        fraction = jnp.divide(s, decay_steps)
        cosine = 0.5 * (1.0 + jnp.cos(k3.unary_float(jnp.multiply(jnp.array(math.pi, dtype=dtype), fraction))))
        decayed = (1 - self.alpha) * cosine + self.alpha
        return jnp.multiply(peak, decayed)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }
