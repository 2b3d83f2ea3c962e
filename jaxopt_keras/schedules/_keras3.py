"""How Keras 3's schedule code runs on its JAX backend.

Keras 3's schedules are written with ``keras.ops``; on the JAX backend
``ops.convert_to_tensor(x)`` is ``jnp.asarray(x)``, ``ops.cast(x, dtype)``
is ``jnp.asarray(x, dtype)``, ``ops.cond`` is ``jax.lax.cond`` and the
arithmetic is ``jnp``'s.  The ``"keras3"`` numerics of each schedule is that
code, op for op, with none of the workarounds of :mod:`._arith`: under
``jit`` XLA then rewrites it exactly as it rewrites Keras 3's own (division
by a constant as a reciprocal multiply, multiply-adds fused, ``pow`` with a
constant exponent special-cased), and run eagerly it computes what Keras 3
computes eagerly.

A Python float is a weakly typed float32 (float64 with x64 on); the schedule
computes in that dtype, as Keras 3 does.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def initial_rate(value: Any, schedule: str) -> jax.Array:
    """``ops.convert_to_tensor(initial_learning_rate)``, which must be a float.

    Keras 3 computes nonsense with an integer one (``decay_rate`` cast to an
    integer); here it is the ``TypeError`` of the TF numerics.
    """
    x = jnp.asarray(value)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{schedule}: `initial_learning_rate` must be a float, received {value!r} of dtype "
            f"{x.dtype}. Write e.g. 0.0 rather than 0."
        )
    return x


def compute_dtype(dtype: Any) -> jnp.dtype:
    """The dtype Keras 3's float ops (``ops.cos``, ``ops.floor``, ``ops.sqrt``,
    ``ops.norm``, ...) compute a ``dtype`` input in on JAX,
    ``dtypes.result_type(dtype, float)``: float32 for an integer and for
    float64 (Keras 3's JAX backend maps float64 to float32 there, x64 or not),
    else the float dtype itself."""
    dtype = jnp.dtype(dtype)
    return jnp.dtype(jnp.float32) if dtype == jnp.float64 or not jnp.issubdtype(dtype, jnp.floating) else dtype


def unary_float(x: jax.Array) -> jax.Array:
    """``x`` as Keras 3's float unary ops take it on JAX (:func:`compute_dtype`)."""
    return x.astype(compute_dtype(x.dtype))


def cast(value: Any, dtype: Any) -> jax.Array:
    """``ops.cast(value, dtype)``: straight to ``dtype`` (no float32 detour, unlike ``tf.cast``)."""
    return jnp.asarray(value, dtype)
