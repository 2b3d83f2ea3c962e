"""``PiecewiseConstantDecay``, in its three numerics."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jaxopt_keras.schedules import _keras3 as k3
from jaxopt_keras.schedules._arith import _boundary, _convert, _tensor_dtype
from jaxopt_keras.schedules.base import LearningRateSchedule


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[i]`` for ``boundaries[i-1] < step <= boundaries[i]``.

    ``values[0]`` up to and including ``boundaries[0]``, ``values[-1]`` after
    ``boundaries[-1]``.  As in Keras, boundaries are cast to the step's
    dtype before comparing.

    Args:
      boundaries: increasing step boundaries.
      values: one more value than boundaries.
      name: kept for the config.
      numerics: ``None`` (the optimizer decides), ``"tf_function"``,
        ``"tf_eager"`` or ``"keras3"`` (:mod:`jaxopt_keras.schedules.base`).

    Raises:
      ValueError: ``len(boundaries) != len(values) - 1``.
    """

    def __init__(self, boundaries: Sequence, values: Sequence, name=None, *, numerics=None):
        super().__init__(numerics)
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}."
            )
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def _tf_eager(self, step: Any) -> jax.Array:
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

    # Comparisons and a choice of value: nothing for grappler to rewrite.
    _tf_function = _tf_eager

    def _keras3(self, step: Any) -> jax.Array:
        # A sum of masked values, not a choice: an infinite value gives NaN
        # outside its interval, as in Keras 3.
        boundaries = [jnp.asarray(b) for b in self.boundaries]
        values = [jnp.asarray(v) for v in self.values]
        step = jnp.asarray(step)
        boundaries = [b if b.dtype == step.dtype else k3.cast(b, step.dtype) for b in boundaries]
        dtype = values[0].dtype
        result = jnp.array(0, dtype=dtype)
        result += k3.cast(step <= boundaries[0], dtype) * values[0]
        result += k3.cast(step > boundaries[-1], dtype) * values[-1]
        for low, high, value in zip(boundaries[:-1], boundaries[1:], values[1:-1]):
            result += k3.cast((step > low) & (step <= high), dtype) * value
        return result

    def get_config(self) -> dict:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}
