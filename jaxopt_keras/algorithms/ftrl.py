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
from jaxopt_keras.core.state import filled
from jaxopt_keras.core.xla import recomputed
from jaxopt_keras.algorithms.spec import Coefficients, Slot, Spec, Static, twice
from jaxopt_keras.core.sparse import IndexedSlices, on_rows
from jaxopt_keras.core.hyperparams import Derived


class FtrlSlots(NamedTuple):
    """Ftrl's ``accumulator`` (sum of squared gradients) and ``linear``."""

    accumulator: Any
    linear: Any


def power(x: jax.Array, lr_power: jax.Array) -> jax.Array:
    """``x ** -lr_power``, as an exact ``sqrt`` when ``lr_power == -0.5``.

    TensorFlow's Ftrl kernels take the ``sqrt`` branch for ``-0.5``; XLA does
    the same for ``pow(x, 0.5)`` when the exponent is a compile-time constant
    (Keras 3 on JAX).  ``lr_power`` lives in the state, so the choice is a
    select: both sides are computed in the same fused loop, which costs far
    less than a ``lax.cond`` (whose branches cannot fuse with the rest of the
    step and copy their operands).
    """
    return jnp.where(lr_power == -0.5, jnp.sqrt(x), jnp.power(x, -lr_power))


def _accumulate(g: jax.Array, accumulator: jax.Array, lr_power: jax.Array):
    """``new_acc = acc + g**2`` and ``new_acc ** -lr_power``.

    ``linear`` needs the new power too, and computes it itself: see
    :func:`~jaxopt_keras.algorithms.base.recomputed`.
    """
    new_accum = accumulator + jnp.square(g)
    return new_accum, power(new_accum, lr_power)


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
    ``lr_power == -0.5`` (see :func:`power`).
    """
    lr = c.learning_rate
    lr_power = c.learning_rate_power
    l1 = c.l1_regularization_strength
    l2 = c.l2_regularization_strength + c.beta / (2.0 * lr)
    if c.shrinkage:
        grad_s = g + (2 * c.l2_shrinkage_regularization_strength) * p
    else:
        grad_s = g
    sigma = power(s.accumulator + jnp.square(g), lr_power) - power(s.accumulator, lr_power)
    linear = s.linear + (grad_s - sigma / lr * p)
    new_accum, new_pow = recomputed(_accumulate, g, s.accumulator, lr_power)
    x = l1 * jnp.sign(linear) - linear
    y = new_pow / lr + 2 * l2
    new_p = jnp.where(jnp.abs(linear) > l1, x / y, jnp.zeros_like(p))
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
    which differs from ``pow(x, 0.5)`` by at most one ulp).
    """
    lr = c.learning_rate
    lr_power = c.learning_rate_power
    l2 = c.l2_regularization_strength + c.beta / (2.0 * lr)
    grad_s = g + c.two_l2_shrinkage * p
    sigma = power(s.accumulator + jnp.square(g), lr_power) - power(s.accumulator, lr_power)
    linear = s.linear + (grad_s - sigma / lr * p)
    new_accum, new_pow = recomputed(_accumulate, g, s.accumulator, lr_power)
    quadratic = new_pow / lr + 2 * l2
    l1 = c.l1_regularization_strength
    clipped = jnp.maximum(jnp.minimum(linear, l1), -l1)
    new_p = (clipped - linear) / quadratic
    return new_p - p, FtrlSlots(new_accum, linear)


def legacy_sparse_update(g: IndexedSlices, p, s: FtrlSlots, c: Coefficients):
    """Legacy Ftrl on rows only (``ResourceSparseApplyFtrl[V2]``): the dense kernel per row."""
    return on_rows(legacy_update, g, p, s, c, with_params=True)


def float32_accumulator(param: jax.Array, args) -> jax.Array:
    """``tf.cast(tf.fill(shape, value), dtype)``: the value rounds through float32."""
    return filled(param, np.float32(args["initial_accumulator_value"]).astype(jnp.asarray(param).dtype))


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
    defaults=_DEFAULTS,
    float32_hyperparams=(
        "learning_rate_power",
        "l1_regularization_strength",
        "l2_regularization_strength",
        "beta",
        "l2_shrinkage_regularization_strength",  # tf.cast(python float, dtype)
    ),
    exact_hyperparams=(),
    slots_type=FtrlSlots,
    slots=(Slot("accumulator", init=initial_accumulator), Slot("linear")),
    slot_order=(("accumulator", "linear"),),
    update=legacy_update,
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
    needs_params=True,
    check_args=_check,
    non_number_errors=_COMPARED,
)


# Keras 3 adds `beta` to a Python float (`self.beta + ...`): a non-number is a TypeError there.
KERAS3 = dataclasses.replace(
    CURRENT, family="keras3", sparse_update=None, non_number_errors={**_COMPARED, "beta": TypeError}
)
