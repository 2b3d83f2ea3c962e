"""What TensorFlow's grappler does to a schedule inside ``tf.function``.

``model.fit`` (and any ``tf.function`` train step that returns a value) runs
the optimizer, and the schedule with it, as a graph that grappler rewrites
before running it (TF 2.21, default ``RewriterConfig``, CPU).  The kernels
are the eager ones; what changes is the order of the float operations and
some of their inputs.  The ``"tf_function"`` numerics of each schedule is
its graph *after* these rewrites:

* constant folding, ``ReduceDivToReciprocalMul``: ``x / C`` becomes
  ``x * fl(1/C)`` for every division by a constant (``step / decay_steps``
  in every schedule; ``/ log(t_mul)`` and ``/ (1 - t_mul)`` in
  CosineDecayRestarts).  A division by a computed value stays a division.
* constant folding, ``ConstantPushDown``: ``C1 * (X * C2)`` becomes
  ``X * fl(C1*C2)``, and ``C * (A * B)`` becomes ``B * (A * C)`` (the
  operands of a commutative op are first sorted by node name), when the
  inner product has no other consumer and the function has outputs;
* constant folding, ``SimplifyArithmeticOperations``: ``x * 1`` and
  ``x + 0`` are dropped (with ``alpha == 0`` this lets the learning rate be
  pushed into a product);
* the arithmetic optimizer, ``ConvertPow``: ``pow(x, c)`` for a constant
  ``c`` in {2, 3, 1, 0.5, 0, -0.5, -1} becomes ``Square(x)``,
  ``x * Square(x)``, ``x``, ``Sqrt(x)``, ``1``, ``Rsqrt(x)``,
  ``Reciprocal(x)`` (:func:`convert_pow`).

Constants are folded with TF's CPU kernels; for ``+ - * /`` that is IEEE
arithmetic, which XLA reproduces.  Inside a ``tf.cond`` branch (CosineDecay
with warmup) constants arrive through ``Switch`` nodes, are not "really
constant" to grappler, and nothing is rewritten.

Turning constant folding and the arithmetic optimizer off
(``tf.config.optimizer.set_experimental_options({"constant_folding": False,
"arithmetic_optimization": False})``) gives the eager values in graphs too.
A ``tf.function`` without outputs skips the pushdowns; ``jit_compile=True``
gives XLA's numerics; neither is reproduced here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxopt_keras.schedules._arith import _mul, _opaque, _pow


def reciprocal_mul(x: jax.Array, c: jax.Array, zero: jax.Array) -> jax.Array:
    """``x / c`` for a constant ``c``, as grappler leaves it: ``x * fl(1/c)``."""
    return _mul(x, 1.0 / c, zero)


def convert_pow(x: jax.Array, exponent: float, power: jax.Array, zero: jax.Array) -> jax.Array:
    """``pow(x, power)`` after ``ConvertPow``; ``exponent`` is ``power``'s value."""
    if exponent == 2:
        return _mul(x, x, zero)  # Square (SquaredDifference when x = 1 - p)
    if exponent == 3:
        return _mul(x, _mul(x, x, zero), zero)  # Mul(x, Square(x))
    if exponent == 1:
        return x
    if exponent == 0.5:
        return jnp.sqrt(x)
    if exponent == 0:
        return jnp.ones_like(x)
    if exponent == -0.5:
        (root,) = _opaque(jnp.sqrt(x))  # Eigen's scalar rsqrt is 1 / sqrt(x)
        return 1.0 / root
    if exponent == -1:
        return 1.0 / x
    return _pow(x, power, zero)
