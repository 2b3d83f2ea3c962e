"""Stochastic gradient descent with optional (Nesterov) momentum.

* legacy: ``ResourceApplyGradientDescent`` without momentum, else
  ``ResourceApplyKerasMomentum``; the ``momentum`` slot exists only when the
  constructor's ``momentum`` is above 0 or a callable
  (:func:`with_momentum_slot`);
  ``learning_rate``/``momentum`` are float32 variables.
* current: the ``m`` slot always exists; ``momentum`` goes through
  ``tf.cast`` (float32 first).
"""

from __future__ import annotations

import dataclasses

from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_keras.algorithms.parts import Prepared, Slot, Static
from jaxopt_keras.algorithms.spec import Coefficients, Spec
from jaxopt_keras.core.sparse import IndexedSlices, gather, scatter_add, scatter_set
from jaxopt_keras.core.xla import fused_copy, opaque_one


# The checked arguments' record of whether the momentum slot exists (SGD,
# RMSprop), decided once from the constructor's ``momentum``.
MOMENTUM_SLOT = "momentum_slot"


def with_momentum_slot(args: Mapping[str, Any]) -> dict:
    """``args`` with :data:`MOMENTUM_SLOT` decided from ``args["momentum"]``::

        callable(momentum) or momentum > 0

    OptimizerV2 (legacy SGD, RMSprop) decides it in its constructor
    (``isinstance(momentum, tf.Tensor) or callable(momentum) or momentum >
    0``): a callable has the slot whatever it returns, and assigning
    ``momentum`` later changes its value, never the slot (a slot kept at 0
    momentum; none, and the value ignored, when there was none).  TF-Keras's
    and Keras 3's RMSprop and Keras 3's SGD decide it on their first step
    from ``momentum > 0`` (``!= 0``): the same unless ``momentum`` is
    assigned in between."""
    momentum = args["momentum"]
    return {**args, MOMENTUM_SLOT: bool(callable(momentum) or momentum > 0)}


def momentum_is_on(args: Mapping[str, Any]) -> bool:
    """The momentum slot's condition: the decision :func:`with_momentum_slot` recorded
    (every spec that uses it records it in its ``check_args``)."""
    return args[MOMENTUM_SLOT]


momentum_is_on.decided_by = "momentum"  # the argument whose value decides it (see keras/factories.split_injected)


class LegacySGDSlots(NamedTuple):
    """Legacy SGD's velocity ``momentum`` (``None`` when momentum is 0)."""

    momentum: Any


class SGDSlots(NamedTuple):
    """Current SGD's velocity ``m``."""

    m: Any


def legacy_update(g: jax.Array, p: jax.Array | None, s: LegacySGDSlots, c: Coefficients):
    """One legacy SGD step::

        p = p - g * lr                                  (no momentum)
        accum = accum * momentum - g * lr
        p = p + accum                                   (momentum)
        p = p + accum * momentum - g * lr               (nesterov)

    ``accum`` as the update goes through
    :func:`~jaxopt_keras.core.xla.fused_copy`: the same values, a faster
    compile.
    """
    if s.momentum is None:
        return -(g * c.learning_rate), s
    accum = s.momentum * c.momentum - g * c.learning_rate
    delta = accum * c.momentum - g * c.learning_rate if c.nesterov else fused_copy(accum, c.one)
    return delta, LegacySGDSlots(accum)


def current_update(g: jax.Array, p: jax.Array | None, s: SGDSlots, c: Coefficients):
    """One current-family SGD step::

        m = -g * lr + m * momentum
        p = p + m                                       (plain)
        p = p + (-g * lr + m * momentum)                (nesterov)

    ``m`` as the update goes through :func:`~jaxopt_keras.core.xla.fused_copy`.
    """
    m = -g * c.learning_rate + s.m * c.momentum
    delta = -g * c.learning_rate + m * c.momentum if c.nesterov else fused_copy(m, c.one)
    return delta, SGDSlots(m)


def one(c: Coefficients) -> jax.Array:
    """A ``1`` XLA cannot fold, for :func:`~jaxopt_keras.core.xla.fused_copy` of the velocity."""
    return opaque_one(c.iterations, c.learning_rate.dtype)


def legacy_sparse_update(g: IndexedSlices, p, s: LegacySGDSlots, c: Coefficients):
    """Legacy SGD on rows (``ResourceScatterAdd`` / ``ResourceSparseApplyKerasMomentum``)::

        p[i] += -g_i * lr                                       (no momentum)
        accum[i] = accum[i] * momentum - g_i * lr ; p[i] += accum[i]   (or the nesterov form)
    """
    idx, gv = g.indices, g.values
    if s.momentum is None:
        return g.with_values(-gv * c.learning_rate), s
    accum = gather(s.momentum, idx) * c.momentum - gv * c.learning_rate
    rows = accum * c.momentum - gv * c.learning_rate if c.nesterov else accum
    return g.with_values(rows), LegacySGDSlots(scatter_set(s.momentum, idx, accum))


def current_sparse_update(g: IndexedSlices, p, s: SGDSlots, c: Coefficients):
    """Current-family SGD on rows: the momentum decays everywhere::

        m = m * momentum ; m[i] += -g_i * lr ;  p = p + m
        nesterov: p[i] += -g_i * lr ; p = p + m * momentum
    """
    idx, gv = g.indices, g.values
    add = -gv * c.learning_rate
    m = scatter_add(s.m * c.momentum, idx, add)
    if not c.nesterov:
        return fused_copy(m, c.one), SGDSlots(m)  # `p + m` as a fused loop, as in the dense step
    if p is None:
        return scatter_add(m * c.momentum, idx, add), SGDSlots(m)
    p = jnp.asarray(p)
    return (scatter_add(p, idx, add) + m * c.momentum) - p, SGDSlots(m)

def _check_legacy(args: dict) -> dict:
    m = args["momentum"]
    if isinstance(m, (int, float)) and (m < 0 or m > 1):
        raise ValueError(f"`momentum` must be between [0, 1]. Received: momentum={m} (of type {type(m)}).")
    return with_momentum_slot(args)


def _check_current(args: dict) -> dict:
    m = args["momentum"]
    if isinstance(m, (int, float)) and (m < 0 or m > 1):
        raise ValueError("`momentum` must be between [0, 1].")
    return args


LEGACY = Spec(
    family="legacy",
    defaults={"learning_rate": 0.01, "momentum": 0.0, "nesterov": False},
    float32_hyperparams=("momentum",),
    exact_hyperparams=(),
    slots_type=LegacySGDSlots,
    slots=(Slot("momentum", when=momentum_is_on),),
    slot_order=(("momentum",),),
    update=legacy_update,
    prepare=(Prepared("one", one),),
    sparse_update=legacy_sparse_update,
    # Without momentum, OptimizerV2's SGD scatter-adds the rows as they come.
    sparse_dedup=momentum_is_on,
    time_decay=True,
    check_args=_check_legacy,
    statics=(Static("nesterov"),),
    non_number_errors={"momentum": TypeError},  # `momentum < 0`
)

CURRENT = Spec(
    family="current",
    defaults={"learning_rate": 0.01, "momentum": 0.0, "nesterov": False},
    float32_hyperparams=("momentum",),  # tf.cast(self.momentum, dtype)
    exact_hyperparams=(),
    slots_type=SGDSlots,
    slots=(Slot("m"),),
    slot_order=(("m",),),
    update=current_update,
    prepare=(Prepared("one", one),),
    sparse_update=current_sparse_update,
    check_args=_check_current,
    statics=(Static("nesterov"),),
)


def _check_keras3(args: dict) -> dict:
    m = args["momentum"]
    if not isinstance(m, float) or m < 0 or m > 1:
        raise ValueError("`momentum` must be a float between [0, 1].")
    return with_momentum_slot(args)


# Keras 3: the legacy slot (none when momentum is 0) and the legacy formula's
# order of operations, ``m * momentum - g * lr``.
KERAS3 = dataclasses.replace(
    LEGACY,
    family="keras3",
    time_decay=False,
    check_args=_check_keras3,
    non_number_errors={"momentum": ValueError},  # `not isinstance(momentum, float)`
    sparse_update=None,
    sparse_dedup=lambda a: True,
)
