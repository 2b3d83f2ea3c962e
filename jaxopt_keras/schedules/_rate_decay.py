"""What ``ExponentialDecay`` and ``InverseTimeDecay`` share: their arguments and operands.

Both take ``(initial_learning_rate, decay_steps, decay_rate, staircase, name)``
and decay in ``p = step / decay_steps`` (floored with ``staircase=True``);
only the formula applied to ``p`` differs, and it lives in each schedule's
own module.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_keras.schedules import _keras3 as k3
from jaxopt_keras.schedules._arith import _cast, _convert, _float_dtype, _opaque, _runtime_zero, _step
from jaxopt_keras.schedules.base import LearningRateSchedule, checked_steps


class RateDecay(LearningRateSchedule):
    """A schedule of ``p = step / decay_steps`` at a ``decay_rate``; subclasses give the formula."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None, *, numerics=None):
        super().__init__(numerics)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = checked_steps("decay_steps", decay_steps)
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def _tf_operands(self, step: Any) -> tuple[jax.Array, ...]:
        """``(lr0, decay_steps, decay_rate, step, zero)`` as TF-Keras makes them, kept opaque to XLA."""
        dtype = _float_dtype(self.initial_learning_rate, type(self).__name__)
        initial, decay_steps, decay_rate, s = _opaque(
            _convert(self.initial_learning_rate, dtype),
            _cast(self.decay_steps, dtype),
            _cast(self.decay_rate, dtype),
            _step(step, dtype),
        )
        return initial, decay_steps, decay_rate, s, _runtime_zero(s)

    def _keras3_operands(self, step: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(lr0, decay_rate, p)`` as Keras 3 computes them, ``p = step / decay_steps`` (floored if staircase)."""
        initial = k3.initial_rate(self.initial_learning_rate, type(self).__name__)
        dtype = initial.dtype
        decay_steps = k3.cast(self.decay_steps, dtype)
        decay_rate = k3.cast(self.decay_rate, dtype)
        p = k3.cast(step, dtype) / decay_steps
        if self.staircase:
            p = jnp.floor(k3.unary_float(p))  # ops.floor: float32 for a float64 on JAX
        return initial, decay_rate, p

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }
