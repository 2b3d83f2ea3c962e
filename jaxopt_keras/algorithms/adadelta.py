"""Adadelta: step sizes from running averages of squared gradients and updates.

* legacy: ``ResourceApplyAdadelta``, slots ``accum_grad``/``accum_var``
  listed all-of-one-then-all-of-the-other; ``rho`` a float32 variable.
* current: slots ``accumulated_grad``/``accumulated_delta_var`` interleaved
  per variable; ``rho`` a Python float, ``1 - rho`` in double precision.
"""

from __future__ import annotations

import dataclasses

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxopt_keras.core.xla import recomputed
from jaxopt_keras.algorithms.parts import Slot, complement
from jaxopt_keras.algorithms.spec import Coefficients, Spec, legacy_epsilon, minus_one, one_minus, pad_missing_iterations
from jaxopt_keras.core.sparse import IndexedSlices, on_rows, scatter_add
from jaxopt_keras.core.hyperparams import Derived


class LegacyAdadeltaSlots(NamedTuple):
    """Legacy Adadelta: averages of squared gradients and of squared updates."""

    accum_grad: Any
    accum_var: Any


class AdadeltaSlots(NamedTuple):
    """Current Adadelta: averages of squared gradients and of squared updates."""

    accumulated_grad: Any
    accumulated_delta_var: Any


def legacy_update(g: jax.Array, p: jax.Array | None, s: LegacyAdadeltaSlots, c: Coefficients):
    """One legacy Adadelta step::

        accum_grad = accum_grad * rho + g**2 * (1 - rho)
        update = sqrt(accum_var + eps) * rsqrt(accum_grad + eps) * g
        p = p - update * lr
        accum_var = accum_var * rho + update**2 * (1 - rho)
    """
    accum = s.accum_grad * c.rho + jnp.square(g) * c.one_minus_rho

    def step(accum_var, accum, g):
        return jnp.sqrt(accum_var + c.epsilon) * lax.rsqrt(accum + c.epsilon) * g

    update = step(s.accum_var, accum, g)
    # The parameter and `accum_var` each compute the update in their own loop.
    accum_var = s.accum_var * c.rho + jnp.square(recomputed(step, s.accum_var, accum, g)) * c.one_minus_rho
    return -(update * c.learning_rate), LegacyAdadeltaSlots(accum, accum_var)


def _current_like(g, s: AdadeltaSlots, c: Coefficients, weighted_square):
    acc_g = c.rho * s.accumulated_grad + weighted_square(c.one_minus_rho, g)

    def step(acc_d, acc_g, g):
        return -jnp.sqrt(acc_d + c.epsilon) * g / jnp.sqrt(acc_g + c.epsilon)

    delta = step(s.accumulated_delta_var, acc_g, g)
    # The parameter and `accumulated_delta_var` each compute delta in their own loop.
    again = recomputed(step, s.accumulated_delta_var, acc_g, g)
    acc_d = c.rho * s.accumulated_delta_var + weighted_square(c.one_minus_rho, again)
    return c.learning_rate * delta, AdadeltaSlots(acc_g, acc_d)


def current_update(g: jax.Array, p: jax.Array | None, s: AdadeltaSlots, c: Coefficients):
    """One current-family Adadelta step::

        accumulated_grad = rho * accumulated_grad + (1 - rho) * g * g
        delta = -sqrt(accumulated_delta_var + eps) * g / sqrt(accumulated_grad + eps)
        accumulated_delta_var = rho * accumulated_delta_var + (1 - rho) * delta * delta
        p = p + lr * delta
    """
    return _current_like(g, s, c, lambda w, x: w * x * x)


def keras3_update(g: jax.Array, p: jax.Array | None, s: AdadeltaSlots, c: Coefficients):
    """One Keras 3 Adadelta step: as :func:`current_update`, with ``(1 - rho) * square(x)``
    where TF-Keras multiplies ``((1 - rho) * x) * x``::

        accumulated_grad = rho * accumulated_grad + (1 - rho) * square(g)
        delta = -(sqrt(accumulated_delta_var + eps) * g) / sqrt(accumulated_grad + eps)
        accumulated_delta_var = rho * accumulated_delta_var + (1 - rho) * square(delta)
        p = p + lr * delta
    """
    return _current_like(g, s, c, lambda w, x: w * jnp.square(x))


def legacy_sparse_update(g: IndexedSlices, p, s: LegacyAdadeltaSlots, c: Coefficients):
    """Legacy Adadelta on rows only (``ResourceSparseApplyAdadelta``): the dense step, per row."""
    return on_rows(legacy_update, g, p, s, c)


def current_sparse_update(g: IndexedSlices, p, s: AdadeltaSlots, c: Coefficients):
    """Current-family Adadelta with a row-sparse gradient::

        acc_g = acc_g + (rho - 1) * acc_g ; acc_g[i] += (1 - rho) * g_i**2
        (then the dense step, with the gradient densified)
    """
    idx, gv = g.indices, g.values
    acc_g = scatter_add(s.accumulated_grad + c.rho_minus_one * s.accumulated_grad, idx, c.one_minus_rho * jnp.square(gv))
    dense = g.to_dense()
    delta = -jnp.sqrt(s.accumulated_delta_var + c.epsilon) * dense / jnp.sqrt(acc_g + c.epsilon)
    acc_d = c.rho * s.accumulated_delta_var + c.one_minus_rho * delta * delta
    return c.learning_rate * delta, AdadeltaSlots(acc_g, acc_d)

LEGACY = Spec(
    family="legacy",
    defaults={"learning_rate": 0.001, "rho": 0.95, "epsilon": 1e-7},
    float32_hyperparams=("rho",),
    exact_hyperparams=("epsilon",),
    slots_type=LegacyAdadeltaSlots,
    slots=(Slot("accum_grad"), Slot("accum_var")),
    slot_order=(("accum_grad",), ("accum_var",)),
    update=legacy_update,
    prepare=(complement("rho"),),  # 1 - rho on the float32 variable, once per step
    sparse_update=legacy_sparse_update,
    adjust_weights=pad_missing_iterations,
    time_decay=True,
    check_args=legacy_epsilon,
)

CURRENT = Spec(
    family="current",
    defaults={"learning_rate": 0.001, "rho": 0.95, "epsilon": 1e-7},
    float32_hyperparams=(),
    exact_hyperparams=("rho", "epsilon"),
    derived=(Derived("one_minus_rho", "rho", one_minus), Derived("rho_minus_one", "rho", minus_one)),
    slots_type=AdadeltaSlots,
    slots=(Slot("accumulated_grad"), Slot("accumulated_delta_var")),
    slot_order=(("accumulated_grad", "accumulated_delta_var"),),
    update=current_update,
    sparse_update=current_sparse_update,
)


KERAS3 = dataclasses.replace(CURRENT, family="keras3", update=keras3_update, sparse_update=None)
