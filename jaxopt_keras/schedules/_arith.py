"""TensorFlow's conversions and operation order, reproduced under XLA.

The TF numerics (``"tf_eager"``, ``"tf_function"``) compute in TF's dtypes
and rounding order; these helpers say how TF converts a Python number
(``tf.cast`` vs ``tf.convert_to_tensor``) and keep XLA from rewriting the
arithmetic when a schedule is traced.  (The ``"keras3"`` numerics wants
XLA's rewrites, as Keras 3 gets them: :mod:`._keras3`.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core.hyperparams import tf_dtype


def _tensor_dtype(value: Any) -> np.dtype:
    """:func:`tf_dtype`, canonicalized (float64 -> float32 unless x64 is on)."""
    return np.dtype(jax.dtypes.canonicalize_dtype(tf_dtype(value)))


def _float_dtype(value: Any, schedule: str) -> np.dtype:
    """The dtype of ``initial_learning_rate``, which must be a floating one.

    TF-Keras fails on an integer learning rate (e.g. ``0`` instead of ``0.0``)
    inside its arithmetic; here that is a clear error rather than numbers
    computed with ``decay_rate`` & co. truncated to integers.
    """
    dtype = _tensor_dtype(value)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{schedule}: `initial_learning_rate` must be a float (Python float, or a "
            f"float32/float64 scalar), received {value!r} of dtype {dtype}; the schedule "
            "computes in its dtype, as TF-Keras does. Write e.g. 0.0 rather than 0."
        )
    return dtype


def _boundary(b: Any, x_dtype: np.dtype) -> jax.Array:
    """``tf.cast(tf.convert_to_tensor(b), step.dtype)`` without integer overflow.

    TF makes a Python int beyond int32 an int64 tensor and compares it with
    its int64 step.  An integer step here may be int32 (x64 off), so a
    boundary outside the step dtype's range is clamped to it, which gives the
    same comparisons for every representable step; a float boundary is
    truncated toward zero first, as ``tf.cast`` does.
    """
    if isinstance(b, jax.Array):
        return b.astype(x_dtype)
    value = b if isinstance(b, int) else np.asarray(b, _tensor_dtype(b))
    if jnp.issubdtype(x_dtype, jnp.integer):
        info = jnp.iinfo(x_dtype)
        if not isinstance(value, int):
            value = int(np.clip(np.trunc(value), -(2.0**64), 2.0**64))  # no inf for int()
        value = min(max(value, int(info.min)), int(info.max))
    return jnp.asarray(np.asarray(value, x_dtype))


def _convert(value: Any, dtype: Any) -> jax.Array:
    """``tf.convert_to_tensor(value, dtype)``: one rounding, straight to ``dtype``.

    What TF does to a Python number that meets a tensor in an arithmetic
    operation, and to ``tf.constant(math.pi, dtype=dtype)``.
    """
    if isinstance(value, jax.Array):
        return value.astype(dtype)
    return jnp.asarray(np.asarray(value, dtype))


def _cast(value: Any, dtype: Any) -> jax.Array:
    """``tf.cast(value, dtype)``: ``value`` becomes a tensor of its own dtype first.

    So a Python float is rounded to float32 before it is cast: in a float64
    schedule ``tf.cast(0.96, tf.float64)`` is ``float64(float32(0.96))``, not
    ``0.96``.
    """
    if isinstance(value, jax.Array):
        return value.astype(dtype)
    return jnp.asarray(_cast_np(value, dtype))


def _cast_np(value: Any, dtype: Any) -> np.ndarray:
    """:func:`_cast` computed with NumPy, for a decision taken at trace time."""
    if isinstance(value, jax.Array):  # concrete only
        return np.asarray(value).astype(dtype)
    return np.asarray(np.asarray(value, tf_dtype(value)), dtype)


def _step(step: Any, dtype: Any) -> jax.Array:
    return jnp.asarray(step).astype(dtype)


# XLA would otherwise compute some schedules differently from TF-Keras (and
# from themselves run eagerly) when jitted, which is how optimizers call them.
# Four rewrites matter; each helper below defeats one of them.
#
# 1. ``x / c`` for a compile-time constant ``c`` becomes ``x * (1 / c)``, and
#    ``log(c)``, ``c1 - c2`` ... are folded at compile time.  The reciprocal is
#    not exact: ``300 * float32(1 / 300) != 1``, so ``(1 - step / decay_steps)
#    ** 0.5`` at ``step == decay_steps`` was ``NaN`` under jit.  -> `_opaque`.
# 2. ``x / pow(a, b)`` becomes ``x * pow(a, -b)`` and ``x / broadcast(y)``
#    (a scalar divisor of a batch of steps, e.g. under ``vmap``) becomes
#    ``x * broadcast(1 / y)``.  -> `_opaque` on the power, `_div`.
# 3. XLA:CPU lets LLVM contract a multiply feeding an add into one FMA (one
#    rounding where TF rounds twice).  -> `_mul_add`, `_mul`.
# 4. `_opaque` only holds during XLA's HLO passes: XLA removes the barrier
#    before it emits code, and LLVM then sees the constants again.  It
#    special-cases ``pow(x, c)`` for a constant exponent (``c`` = 2, 0.5, -1
#    give ``x * x``, ``sqrt(x)``, ``1 / x``, which differ from ``pow`` in the
#    last bit).  -> `_pow`: the exponent ``+ zero``, a runtime value.
#    (Checked on jax 0.10: a constant *base* of ``pow`` and a constant
#    argument of ``log`` give the same bits as runtime ones; only exponents
#    are special-cased.)


def _opaque(*values: jax.Array) -> tuple[jax.Array, ...]:
    """The values, hidden from XLA's algebraic simplifier (an optimization barrier).

    Constants passed through it are runtime values to the simplifier, so it
    neither folds them nor rewrites divisions by them.  Not to LLVM, which
    sees them once XLA has dropped the barrier (rewrite 4): see `_pow`.
    """
    return jax.lax.optimization_barrier(values)


def _runtime_zero(s: jax.Array) -> jax.Array:
    """A zero XLA and LLVM cannot prove is zero: ``s * 0`` (``0`` where ``s`` is not finite).

    Its sign follows ``s`` and is unknown at compile time, so ``x + zero``
    cannot be folded to ``x`` (``-0.0 + 0.0`` is ``+0.0``).  ``s - s`` would not
    do: for a step converted from an integer, LLVM knows it is ``+0.0``.
    """
    return jnp.where(jnp.isfinite(s), s * 0, jnp.zeros_like(s))


def _mul_add(a: jax.Array, b: jax.Array, c: jax.Array, zero: jax.Array) -> jax.Array:
    """``a * b + c`` with the product rounded on its own, as TF computes it.

    Adding ``zero`` (from :func:`_runtime_zero`) between the multiply and the
    add leaves LLVM nothing to contract but ``fma(a, b, zero)``, which is the
    product correctly rounded.  Equal to TF's result except that a product of
    ``-0.0`` may count as ``+0.0``, which only shows when ``c`` is ``-0.0``.
    """
    return (a * b + zero) + c


def _div(a: jax.Array, b: jax.Array, zero: jax.Array) -> jax.Array:
    """``a / b`` with a divisor XLA cannot see as a constant or a broadcast.

    ``b + zero`` is ``b`` (up to the sign of a zero ``b``) but has the step's
    shape, so ``x / broadcast(b)`` is not turned into ``x * (1 / b)``.
    """
    return a / (b + zero)


def _mul(a: jax.Array, b: jax.Array, zero: jax.Array) -> jax.Array:
    """``a * b`` rounded on its own, whatever consumes it (no FMA contraction)."""
    return a * b + zero


def _pow(x: jax.Array, exponent: jax.Array, zero: jax.Array) -> jax.Array:
    """``pow(x, exponent)`` with a runtime exponent, as TF's ``Pow`` kernel computes it.

    XLA's runtime ``pow`` gives the bits of TF's; a constant exponent would
    be special-cased by LLVM (rewrite 4 above).
    """
    return jnp.power(x, exponent + zero)


# TF's CPU kernels for scalars call the C library: XLA's runtime `pow` and
# `cos` give the same bits, its `log` does not (it differs in the last bit on
# about 12% of float32 inputs).  That matters only where a floor of a ratio of
# logs lands on an integer: SGDR's first restart, whose arguments are known
# when tracing.


@functools.lru_cache(maxsize=None)
def _c_logf() -> Any:
    """The C library's ``logf``, or ``None`` where it cannot be loaded."""
    name = "libm.so.6" if sys.platform.startswith("linux") else ctypes.util.find_library("m")
    try:
        logf = ctypes.CDLL(name).logf
    except (OSError, AttributeError, TypeError):
        return None
    logf.restype, logf.argtypes = ctypes.c_float, [ctypes.c_float]
    return logf


def _c_log(value: np.ndarray) -> np.ndarray:
    """``log`` of a float32/float64 NumPy scalar, as TF's CPU kernel computes it: C's ``logf``/``log``.

    Without a loadable C library, float32 falls back to the correctly rounded
    value, which glibc's ``logf`` gives on all but ~0.6% of inputs.
    """
    logf = _c_logf() if value.dtype == np.float32 else None
    if logf is not None:
        return np.float32(logf(float(value)))
    return np.asarray(math.log(float(value)), value.dtype)


def _log(x: jax.Array, *known: np.ndarray) -> jax.Array:
    """``log(x)``, with TF's value (:func:`_c_log`) where ``x`` is one of the ``known`` constants."""
    out = jnp.log(x)
    for c in known:
        out = jnp.where(x == c, _c_log(c), out)
    return out
