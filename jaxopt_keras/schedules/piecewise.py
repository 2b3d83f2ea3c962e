"""``PiecewiseConstantDecay``, in its three numerics."""

from __future__ import annotations

from typing import Any, Sequence

import functools

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

    Values of different types (``[1, 0.5]``: int32 and float32) are taken as
    TF-Keras takes them: eagerly (``"tf_eager"``) each value keeps its own
    dtype, and a jitted step chooses among them in their common dtype, the
    same number once cast to the parameter's; inside ``tf.function``
    (``"tf_function"``) they are a ``TypeError``; ``"keras3"`` computes in
    ``values[0]``'s dtype promoted by the others, as Keras 3 does.

    Raises:
      ValueError: ``len(boundaries) != len(values) - 1``.
      TypeError: values of different types, in the ``"tf_function"`` numerics.
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
        # Eagerly TF's `tf.case` returns the chosen value as it is, in its own
        # dtype (`[1, 0.5]`: int32 1, then float32 0.5).  Traced, the dtype must
        # not depend on the step: mixed values are chosen in their promoted
        # dtype, which the optimizer's cast to the variable's dtype makes the
        # same number (`tf.cast(lr, var.dtype)`).
        x = jnp.asarray(step)
        values = [_convert(v, _tensor_dtype(v)) for v in self.values]
        bounds = [_boundary(b, x.dtype) for b in self.boundaries]
        if len({v.dtype for v in values}) > 1 and not isinstance(x, jax.core.Tracer):
            return values[_chosen(x, bounds)]
        out_dtype = functools.reduce(jnp.promote_types, [v.dtype for v in values])
        result = values[0].astype(out_dtype)
        # Walk from the top: the first matching interval wins, as in tf.case.
        result = jnp.where(x > bounds[-1], values[-1].astype(out_dtype), result)
        for low, high, v in zip(bounds[:-1], bounds[1:], values[1:-1]):
            result = jnp.where((x > low) & (x <= high), v.astype(out_dtype), result)
        return jnp.where(x <= bounds[0], values[0].astype(out_dtype), result)

    def _tf_function(self, step: Any) -> jax.Array:
        # Comparisons and a choice of value: nothing for grappler to rewrite.
        # Inside tf.function `tf.case` builds one `cond` whose branches must
        # agree in dtype, so TF-Keras refuses mixed values at the first step.
        dtypes = [_tensor_dtype(v) for v in self.values]
        if len(set(dtypes)) > 1:
            listed = ", ".join(f"{v!r} ({d.name})" for v, d in zip(self.values, dtypes))
            raise TypeError(
                f"PiecewiseConstantDecay's values have different types: {listed}. TF-Keras refuses them "
                "inside tf.function (`model.fit`, what the legacy and current families compute by "
                "default) with a TypeError. Give every value one type (`1.0` for `1`), or build the "
                "schedule with numerics='tf_eager' (TF-Keras run eagerly, where the legacy optimizers "
                "take them) or numerics='keras3'."
            )
        return self._tf_eager(step)

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


def _chosen(x: jax.Array, bounds: list[jax.Array]) -> int:
    """The index of the value ``tf.case`` chooses at a concrete step ``x``
    (``values[0]`` where no interval matches, a NaN step)."""
    if x <= bounds[0]:
        return 0
    if x > bounds[-1]:
        return len(bounds)
    for i, (low, high) in enumerate(zip(bounds[:-1], bounds[1:]), start=1):
        if low < x <= high:
            return i
    return 0
