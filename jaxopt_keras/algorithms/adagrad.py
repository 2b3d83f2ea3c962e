"""Adagrad: per-coordinate step sizes from the sum of squared gradients.

* legacy: ``ResourceApplyAdagradV2``, epsilon outside the square root.
* current: epsilon inside the square root.
"""

from __future__ import annotations

import dataclasses

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_keras.core.state import filled, slot_dtype
from jaxopt_keras.algorithms.parts import Slot
from jaxopt_keras.algorithms.spec import Coefficients, Spec, pad_missing_iterations
from jaxopt_keras.core.sparse import IndexedSlices, gather, scatter_add, scatter_set


class AdagradSlots(NamedTuple):
    """Adagrad's running sum of squared gradients."""

    accumulator: Any


def initial_accumulator(param: jax.Array, args) -> jax.Array:
    """``initial_accumulator_value`` converted to the slot's dtype in one rounding."""
    return filled(param, args["initial_accumulator_value"], slot_dtype(param, args))


def legacy_update(g: jax.Array, p: jax.Array | None, s: AdagradSlots, c: Coefficients):
    """One legacy Adagrad step::

        accumulator = accumulator + g**2
        p = p - g * lr / (sqrt(accumulator) + epsilon)
    """
    acc = s.accumulator + jnp.square(g)
    return -(g * c.learning_rate / (jnp.sqrt(acc) + c.epsilon)), AdagradSlots(acc)


def current_update(g: jax.Array, p: jax.Array | None, s: AdagradSlots, c: Coefficients):
    """One current-family Adagrad step::

        accumulator = accumulator + g * g
        p = p - lr * g / sqrt(accumulator + epsilon)
    """
    acc = s.accumulator + g * g
    return -(c.learning_rate * g / jnp.sqrt(acc + c.epsilon)), AdagradSlots(acc)


def legacy_sparse_update(g: IndexedSlices, p, s: AdagradSlots, c: Coefficients):
    """Legacy Adagrad on rows only (``ResourceSparseApplyAdagradV2``)::

        acc[i] += g_i**2 ;  p[i] -= g_i * lr / (sqrt(acc[i]) + epsilon)
    """
    idx, gv = g.indices, g.values
    acc_rows = gather(s.accumulator, idx) + jnp.square(gv)
    rows = -(gv * c.learning_rate / (jnp.sqrt(acc_rows) + c.epsilon))
    return g.with_values(rows), AdagradSlots(scatter_set(s.accumulator, idx, acc_rows))


def current_sparse_update(g: IndexedSlices, p, s: AdagradSlots, c: Coefficients):
    """Current-family Adagrad on rows only::

        acc[i] += g_i * g_i ;  p[i] += -lr * g_i / sqrt(acc[i] + epsilon)
    """
    idx, gv = g.indices, g.values
    acc = scatter_add(s.accumulator, idx, gv * gv)
    rows = -c.learning_rate * gv / jnp.sqrt(gather(acc, idx) + c.epsilon)
    return g.with_values(rows), AdagradSlots(acc)

def _check_legacy(args: dict) -> dict:
    value = args["initial_accumulator_value"]
    if value < 0.0:
        raise ValueError(f"initial_accumulator_value must be non-negative: {value}")
    if not args["epsilon"]:
        args["epsilon"] = 1e-7
    return args


LEGACY = Spec(
    family="legacy",
    defaults={"learning_rate": 0.001, "initial_accumulator_value": 0.1, "epsilon": 1e-7},
    float32_hyperparams=(),
    exact_hyperparams=("epsilon",),
    slots_type=AdagradSlots,
    slots=(Slot("accumulator", init=initial_accumulator),),
    slot_order=(("accumulator",),),
    update=legacy_update,
    sparse_update=legacy_sparse_update,
    adjust_weights=pad_missing_iterations,
    time_decay=True,
    check_args=_check_legacy,
    non_number_errors={"initial_accumulator_value": TypeError},  # `initial_accumulator_value < 0.0`
)

CURRENT = Spec(
    family="current",
    defaults={"learning_rate": 0.001, "initial_accumulator_value": 0.1, "epsilon": 1e-7},
    float32_hyperparams=(),
    exact_hyperparams=("epsilon",),
    slots_type=AdagradSlots,
    slots=(Slot("accumulator", init=initial_accumulator),),
    slot_order=(("accumulator",),),
    update=current_update,
    sparse_update=current_sparse_update,
)


KERAS3 = dataclasses.replace(CURRENT, family="keras3", sparse_update=None)
