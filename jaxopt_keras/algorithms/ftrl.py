"""FTRL-Proximal ("Follow The Regularized Leader").

The parameter is a function of two slots, ``accumulator`` (sum of squared
gradients) and ``linear``; its update is not additive, so ``delta`` is
``new_param - param``.

* legacy: TensorFlow's ``ResourceApplyFtrl`` (``ResourceApplyFtrlV2`` when
  ``l2_shrinkage_regularization_strength > 0``), which uses ``sqrt`` when
  ``learning_rate_power == -0.5``; slots interleaved per variable;
  hyperparameters float32 variables; ``lr`` is accepted but ignored, as
  TF-Keras ignores it for this class.
* current: Keras's Python formula, always with ``pow``; the initial
  accumulator is rounded through float32 (``tf.fill`` then ``tf.cast``).
"""

from __future__ import annotations

import dataclasses

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.algorithms.adagrad import initial_accumulator
from jaxopt_keras.core.state import filled, slot_dtype
from jaxopt_keras.core.xla import after
from jaxopt_keras.algorithms.parts import Prepared, Slot, Static
from jaxopt_keras.algorithms.spec import Coefficients, Spec, twice
from jaxopt_keras.core.sparse import IndexedSlices, on_rows
from jaxopt_keras.core.hyperparams import Derived


class FtrlSlots(NamedTuple):
    """Ftrl's ``accumulator`` (sum of squared gradients) and ``linear``."""

    accumulator: Any
    linear: Any


def power(x: jax.Array, use_sqrt: jax.Array, exponent: jax.Array) -> jax.Array:
    """``x ** exponent`` (``exponent = -lr_power``), as an exact ``sqrt`` when
    ``use_sqrt`` (``lr_power == -0.5``).

    TensorFlow's Ftrl kernels take the ``sqrt`` branch for ``-0.5``; XLA does
    the same for ``pow(x, 0.5)`` when the exponent is a compile-time constant
    (Keras 3 on JAX).  ``lr_power`` lives in the state, so the choice is a
    select: both sides are computed in the same fused loop, which costs far
    less than a ``lax.cond`` (whose branches cannot fuse with the rest of the
    step and copy their operands).  The test and ``-lr_power`` are prepared
    once per step and dtype (``c.sqrt_power``, ``c.neg_lr_power``).
    """
    return jnp.where(use_sqrt, jnp.sqrt(x), jnp.power(x, exponent))


def accumulated(g: jax.Array, accumulator: jax.Array, linear: jax.Array) -> jax.Array:
    """``acc + g**2``, computed after the new ``linear``, which reads the old ``acc``.

    ``linear``'s loop reads the old accumulator, and the accumulator's loop
    overwrites it in place; :func:`~jaxopt_keras.core.xla.after` orders the
    two, where XLA would otherwise copy the old accumulator each step.  The
    new parameter reads the stored new accumulator.
    """
    return accumulator + after(jnp.square(g), linear)


def sqrt_power(c: Coefficients) -> jax.Array:
    """Whether ``x ** -lr_power`` is a ``sqrt`` (``lr_power == -0.5``)."""
    return c.learning_rate_power == -0.5


def neg_lr_power(c: Coefficients) -> jax.Array:
    """``-lr_power``, the exponent of :func:`power`."""
    return -c.learning_rate_power


def adjusted_l2(c: Coefficients) -> jax.Array:
    """``l2 + beta / (2 * lr)``."""
    return c.l2_regularization_strength + c.beta / (2.0 * c.learning_rate)


def two_l2(c: Coefficients) -> jax.Array:
    """``2 * l2`` of the adjusted ``l2``."""
    return 2 * c.l2


def legacy_two_l2_shrinkage(c: Coefficients) -> jax.Array:
    """``2 * l2_shrinkage`` on its float32 value (OptimizerV2 `tf.cast`s the Python float, a float32 tensor)."""
    return 2 * c.l2_shrinkage_regularization_strength


def neg_l1(c: Coefficients) -> jax.Array:
    """``-l1``, the lower end of the current family's clip."""
    return -c.l1_regularization_strength


# What every parameter of a dtype shares, once per step (see :class:`Prepared`).
PREPARE = (
    Prepared("sqrt_power", sqrt_power),
    Prepared("neg_lr_power", neg_lr_power),
    Prepared("l2", adjusted_l2),
    Prepared("two_l2", two_l2),
)


def legacy_update(g: jax.Array, p: jax.Array, s: FtrlSlots, c: Coefficients):
    """One legacy Ftrl step (``ResourceApplyFtrl[V2]``)::

        l2 = l2 + beta / (2 * lr)
        g_s = g + 2 * l2_shrinkage * p                   (V2, shrinkage > 0)
        new_acc = acc + g**2
        linear = linear + g_s - (new_acc**-lr_power - acc**-lr_power) / lr * p
        p = (l1 * sign(linear) - linear) / (new_acc**-lr_power / lr + 2 * l2)
              if |linear| > l1 else 0
        acc = new_acc

    As in the kernel, ``x ** -lr_power`` is an exact ``sqrt`` when
    ``lr_power == -0.5`` (see :func:`power`).  The scalars (``l2``, ``2 *
    l2``, ``2 * l2_shrinkage``) are prepared once per step and dtype
    (:data:`LEGACY`).
    """
    l1 = c.l1_regularization_strength
    linear, new_accum, y = _legacy_linear(g, p, s, c)
    x = l1 * jnp.sign(linear) - linear
    new_p = jnp.where(jnp.abs(linear) > l1, x / y, jnp.zeros_like(p))
    return new_p - p, FtrlSlots(new_accum, linear)


def _legacy_linear(g: jax.Array, p: jax.Array, s: FtrlSlots, c: Coefficients):
    """The legacy kernels' new ``linear`` and accumulator, and the quadratic ``y``."""
    lr = c.learning_rate
    if c.shrinkage:
        grad_s = g + c.two_l2_shrinkage * p
    else:
        grad_s = g
    pw = c.sqrt_power, c.neg_lr_power
    sigma = power(s.accumulator + jnp.square(g), *pw) - power(s.accumulator, *pw)
    linear = s.linear + (grad_s - sigma / lr * p)
    new_accum = accumulated(g, s.accumulator, linear)
    return linear, new_accum, power(new_accum, *pw) / lr + c.two_l2


def legacy_sparse_row_update(g: jax.Array, p: jax.Array, s: FtrlSlots, c: Coefficients):
    """One legacy Ftrl step of the indexed rows (``ResourceSparseApplyFtrl[V2]``).

    :func:`legacy_update`'s ``linear`` and accumulator, but the sparse kernel
    (``ComputeFtrl``, and ``FtrlCompute`` for rows of one element) takes the
    new parameter as the current family does, without a select::

        p = (clip(linear, -l1, l1) - linear) / y

    It equals the dense kernel's wherever both are finite; a NaN ``linear``
    or ``y`` (a NaN or infinite gradient) gives NaN, where the dense kernel's
    select gives 0.  One case we do not copy: where ``y == 0`` and
    ``|linear| <= l1`` (``initial_accumulator_value=0``, no ``l2`` or
    ``beta``, an entry whose gradients so far are all 0) the kernel divides
    0 by 0 and the entry is NaN for good; ours is 0, the dense kernel's
    value and FTRL's (docs/sparse.md).
    """
    l1 = c.l1_regularization_strength
    linear, new_accum, y = _legacy_linear(g, p, s, c)
    x = jnp.maximum(jnp.minimum(linear, l1), -l1) - linear
    new_p = jnp.where((x == 0) & (y == 0), jnp.zeros_like(p), x / y)
    return new_p - p, FtrlSlots(new_accum, linear)


def current_update(g: jax.Array, p: jax.Array, s: FtrlSlots, c: Coefficients):
    """One current-family Ftrl step::

        l2 = l2 + beta / (2 * lr)
        g_s = g + 2 * l2_shrinkage * p
        new_acc = acc + g**2
        linear = linear + (g_s - (new_acc**-lr_power - acc**-lr_power) / lr * p)
        p = (clip(linear, -l1, l1) - linear) / (new_acc**-lr_power / lr + 2 * l2)
        acc = new_acc

    ``x ** -lr_power`` is :func:`power` (``sqrt`` for ``lr_power == -0.5``,
    which differs from ``pow(x, 0.5)`` by at most one ulp).  The scalars are
    prepared once per step and dtype (:data:`CURRENT`).
    """
    lr = c.learning_rate
    grad_s = g + c.two_l2_shrinkage * p
    pw = c.sqrt_power, c.neg_lr_power
    sigma = power(s.accumulator + jnp.square(g), *pw) - power(s.accumulator, *pw)
    linear = s.linear + (grad_s - sigma / lr * p)
    new_accum = accumulated(g, s.accumulator, linear)
    new_pow = power(new_accum, *pw)
    quadratic = new_pow / lr + c.two_l2
    clipped = jnp.maximum(jnp.minimum(linear, c.l1_regularization_strength), c.neg_l1)
    new_p = (clipped - linear) / quadratic
    return new_p - p, FtrlSlots(new_accum, linear)


def legacy_sparse_update(g: IndexedSlices, p, s: FtrlSlots, c: Coefficients):
    """Legacy Ftrl on rows only (``ResourceSparseApplyFtrl[V2]``): :func:`legacy_sparse_row_update` per row."""
    return on_rows(legacy_sparse_row_update, g, p, s, c, with_params=True)


def float32_accumulator(param: jax.Array, args) -> jax.Array:
    """``tf.cast(tf.fill(shape, value), dtype)``: the value rounds through float32."""
    dtype = slot_dtype(param, args)
    return filled(param, np.float32(args["initial_accumulator_value"]).astype(dtype), dtype)


def _check(args: dict) -> dict:
    def need(cond: bool, message: str):
        if not cond:
            raise ValueError(message)

    v = args["initial_accumulator_value"]
    need(v >= 0.0, f"`initial_accumulator_value` needs to be positive or zero. Received: initial_accumulator_value={v}.")
    v = args["learning_rate_power"]
    need(v <= 0.0, f"`learning_rate_power` needs to be negative or zero. Received: learning_rate_power={v}.")
    for k in ("l1_regularization_strength", "l2_regularization_strength", "l2_shrinkage_regularization_strength"):
        need(args[k] >= 0.0, f"`{k}` needs to be positive or zero. Received: {k}={args[k]}.")
    return args


def _check_legacy(args: dict) -> dict:
    args = _check(args)
    if "lr" in args:
        lr = args.pop("lr")
        warnings.warn(
            f"legacy Ftrl ignores `lr={lr}`, as TF-Keras's Ftrl does (it reads only "
            f"`learning_rate`, here {args['learning_rate']}).",
            UserWarning,
            stacklevel=5,
        )
    return args


# Keras's constructor compares these with 0: a non-number is a TypeError there.
_COMPARED = {
    k: TypeError
    for k in (
        "initial_accumulator_value",
        "learning_rate_power",
        "l1_regularization_strength",
        "l2_regularization_strength",
        "l2_shrinkage_regularization_strength",
    )
}


def _shrinkage(args) -> bool:
    """The kernel choice (``FtrlV2`` when shrinkage > 0), fixed at construction."""
    return args["l2_shrinkage_regularization_strength"] > 0.0


_DEFAULTS = {
    "learning_rate": 0.001,
    "learning_rate_power": -0.5,
    "initial_accumulator_value": 0.1,
    "l1_regularization_strength": 0.0,
    "l2_regularization_strength": 0.0,
    "l2_shrinkage_regularization_strength": 0.0,
    "beta": 0.0,
}

LEGACY = Spec(
    family="legacy",
    singular={"learning_rate": 0.0},
    defaults=_DEFAULTS,
    float32_hyperparams=(
        "learning_rate_power",
        "l1_regularization_strength",
        "l2_regularization_strength",
        "beta",
        "l2_shrinkage_regularization_strength",  # tf.cast(python float, dtype): a float32 tensor first
    ),
    exact_hyperparams=(),
    attributes=("l2_shrinkage_regularization_strength",),  # not a `_set_hyper` variable
    config_order=(  # OptimizerV2 Ftrl's get_config order
        "initial_accumulator_value",
        "learning_rate_power",
        "l1_regularization_strength",
        "l2_regularization_strength",
        "beta",
        "l2_shrinkage_regularization_strength",
    ),
    slots_type=FtrlSlots,
    slots=(Slot("accumulator", init=initial_accumulator), Slot("linear")),
    slot_order=(("accumulator", "linear"),),
    update=legacy_update,
    prepare=PREPARE + (Prepared("two_l2_shrinkage", legacy_two_l2_shrinkage),),
    sparse_update=legacy_sparse_update,
    time_decay=True,
    needs_params=True,
    check_args=_check_legacy,
    non_number_errors=_COMPARED,
    zero_arg_callables=("learning_rate", "beta"),  # the others are compared in the constructor
    statics=(Static("shrinkage", _shrinkage),),
    name_index=5,  # Keras: (..., l2_regularization_strength, name, l2_shrinkage_..., beta)
)

CURRENT = Spec(
    family="current",
    singular={"learning_rate": 0.0},
    defaults=_DEFAULTS,
    float32_hyperparams=(),
    exact_hyperparams=(
        "learning_rate_power",
        "l1_regularization_strength",
        "l2_regularization_strength",
        "l2_shrinkage_regularization_strength",
        "beta",
    ),
    derived=(Derived("two_l2_shrinkage", "l2_shrinkage_regularization_strength", twice),),
    slots_type=FtrlSlots,
    slots=(Slot("accumulator", init=float32_accumulator), Slot("linear")),
    slot_order=(("accumulator", "linear"),),
    update=current_update,
    prepare=PREPARE + (Prepared("neg_l1", neg_l1),),
    needs_params=True,
    check_args=_check,
    non_number_errors=_COMPARED,
)


# Keras 3 adds `beta` to a Python float (`self.beta + ...`): a non-number is a TypeError there.
KERAS3 = dataclasses.replace(
    CURRENT,
    family="keras3",
    sparse_update=None,
    non_number_errors={**_COMPARED, "beta": TypeError},
    # `initializers.Constant(initial_accumulator_value)`: one rounding to the slot's dtype.
    slots=(Slot("accumulator", init=initial_accumulator), Slot("linear")),
)
