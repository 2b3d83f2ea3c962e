"""RMSprop, plain or centered, with optional momentum.

Epsilon's placement differs *within* the legacy family:

* legacy with ``momentum > 0``: TensorFlow's ``ResourceApply[Centered]RMSProp``
  kernels add epsilon inside the square root, ``g / sqrt(ms + eps)``;
* legacy without momentum: Keras's Python code adds it outside,
  ``g / (sqrt(ms) + eps)``;
* current: inside, ``g * rsqrt(velocity + eps)``.

Slot names: legacy ``rms``/``momentum``/``mg``; current
``velocity``/``momentum``/``average_gradient``.  Both list all of one slot,
then all of the next.
"""

from __future__ import annotations

import dataclasses

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxopt_keras.algorithms.sgd import momentum_is_on, with_momentum_slot
from jaxopt_keras.algorithms.parts import Slot, complement
from jaxopt_keras.algorithms.spec import Coefficients, Spec, legacy_epsilon, one_minus, pad_missing_iterations
from jaxopt_keras.core.sparse import IndexedSlices, gather, on_rows, scatter_add
from jaxopt_keras.core.hyperparams import Derived


class LegacyRMSpropSlots(NamedTuple):
    """Legacy RMSprop: mean square ``rms``; ``momentum`` (if momentum > 0);
    mean gradient ``mg`` (if centered)."""

    rms: Any
    momentum: Any
    mg: Any


class RMSpropSlots(NamedTuple):
    """Current RMSprop: ``velocity``; ``momentum`` (if momentum > 0);
    ``average_gradient`` (if centered)."""

    velocity: Any
    momentum: Any
    average_gradient: Any


def legacy_update(g: jax.Array, p: jax.Array | None, s: LegacyRMSpropSlots, c: Coefficients):
    """One legacy RMSprop step.

    With momentum (fused kernels, epsilon inside the root)::

        rms = rms + (g**2 - rms) * (1 - rho)
        mg = mg + (g - mg) * (1 - rho)                          (centered)
        mom = mom * momentum + g * lr / sqrt(rms [- mg**2] + eps)
        p = p - mom

    Without momentum (epsilon outside the root)::

        rms = rho * rms + (1 - rho) * g**2
        mg = rho * mg + (1 - rho) * g                           (centered)
        p = p - lr * g / (sqrt(rms [- mg**2]) + eps)

    ``1 - rho`` is prepared once per step and dtype (:data:`LEGACY`).
    """
    if s.momentum is not None:
        rms = s.rms + (jnp.square(g) - s.rms) * c.one_minus_rho
        if s.mg is not None:
            mg = s.mg + (g - s.mg) * c.one_minus_rho
            denom = (rms - jnp.square(mg)) + c.epsilon
        else:
            mg = None
            denom = rms + c.epsilon
        mom = s.momentum * c.momentum + (g * c.learning_rate) / jnp.sqrt(denom)
        return -mom, LegacyRMSpropSlots(rms, mom, mg)
    rms = c.rho * s.rms + c.one_minus_rho * jnp.square(g)
    denom = rms
    mg = None
    if s.mg is not None:
        mg = c.rho * s.mg + c.one_minus_rho * g
        denom = rms - jnp.square(mg)
    return -(c.learning_rate * g / (jnp.sqrt(denom) + c.epsilon)), LegacyRMSpropSlots(rms, None, mg)


def _current_like(g, s: RMSpropSlots, c: Coefficients, scaled):
    velocity = c.rho * s.velocity + c.one_minus_rho * jnp.square(g)
    avg = None
    if s.average_gradient is not None:
        avg = c.rho * s.average_gradient + c.one_minus_rho * g
        denominator = velocity - jnp.square(avg) + c.epsilon
    else:
        denominator = velocity + c.epsilon
    increment = scaled(c.learning_rate * g, denominator)
    if s.momentum is not None:
        mom = c.momentum * s.momentum + increment
        return -mom, RMSpropSlots(velocity, mom, avg)
    return -increment, RMSpropSlots(velocity, None, avg)


def current_update(g: jax.Array, p: jax.Array | None, s: RMSpropSlots, c: Coefficients):
    """One current-family RMSprop step::

        velocity = rho * velocity + (1 - rho) * g**2
        average_gradient = rho * average_gradient + (1 - rho) * g    (centered)
        increment = lr * g * rsqrt(velocity [- average_gradient**2] + eps)
        momentum = momentum * momentum_slot + increment ; p = p - momentum_slot
                                                                (momentum > 0)
        p = p - increment                                       (otherwise)
    """
    return _current_like(g, s, c, lambda x, d: x * lax.rsqrt(d))


def keras3_update(g: jax.Array, p: jax.Array | None, s: RMSpropSlots, c: Coefficients):
    """One Keras 3 RMSprop step: as :func:`current_update`, dividing by a square
    root where TF-Keras multiplies by ``rsqrt``::

        increment = (lr * g) / sqrt(velocity [- average_gradient**2] + eps)
    """
    return _current_like(g, s, c, lambda x, d: x / jnp.sqrt(d))


def legacy_sparse_update(g: IndexedSlices, p, s: LegacyRMSpropSlots, c: Coefficients):
    """Legacy RMSprop with a row-sparse gradient.

    With momentum (``ResourceSparseApply[Centered]RMSProp``): the dense kernel's
    step on the rows only.  Without momentum, ``rms`` (and ``mg``) decay
    everywhere and the parameter moves on the rows::

        rms = rms * rho ; rms[i] += g_i**2 * (1 - rho)
        p[i] += -lr * g_i / (sqrt(rms[i] [- mg[i]**2]) + epsilon)
    """
    idx, gv = g.indices, g.values
    if s.momentum is not None:
        return on_rows(legacy_update, g, p, s, c)
    rms = scatter_add(s.rms * c.rho, idx, gv * gv * c.one_minus_rho)
    denom = gather(rms, idx)
    mg = None
    if s.mg is not None:
        mg = scatter_add(s.mg * c.rho, idx, gv * c.one_minus_rho)
        denom = denom - jnp.square(gather(mg, idx))
    rows = -c.learning_rate * gv / (jnp.sqrt(denom) + c.epsilon)
    return g.with_values(rows), LegacyRMSpropSlots(rms, None, mg)


def current_sparse_update(g: IndexedSlices, p, s: RMSpropSlots, c: Coefficients):
    """Current-family RMSprop with a row-sparse gradient::

        velocity = rho * velocity ; velocity[i] += g_i**2 * (1 - rho)
        increment_i = lr * g_i * rsqrt(velocity[i] [- avg[i]**2] + epsilon)
        momentum = momentum * mom ; mom[i] += increment_i ; p = p - mom    (momentum > 0)
        p[i] -= increment_i                                                  (otherwise)
    """
    idx, gv = g.indices, g.values
    velocity = scatter_add(c.rho * s.velocity, idx, jnp.square(gv) * c.one_minus_rho)
    avg = None
    if s.average_gradient is not None:
        avg = scatter_add(c.rho * s.average_gradient, idx, gv * c.one_minus_rho)
        denominator = velocity - jnp.square(avg) + c.epsilon
    else:
        denominator = velocity + c.epsilon
    increment = c.learning_rate * gv * lax.rsqrt(gather(denominator, idx))
    if s.momentum is not None:
        mom = scatter_add(c.momentum * s.momentum, idx, increment)
        return -mom, RMSpropSlots(velocity, mom, avg)
    return g.with_values(-increment), RMSpropSlots(velocity, None, avg)

def _centered(args) -> bool:
    return bool(args["centered"])


def _check_legacy(args: dict) -> dict:
    m = args["momentum"]
    if isinstance(m, (int, float)) and (m < 0 or m > 1):
        raise ValueError(f"`momentum` must be between [0, 1]. Received: momentum={m} (of type {type(m)}).")
    return with_momentum_slot(legacy_epsilon(args))


LEGACY = Spec(
    family="legacy",
    defaults={"learning_rate": 0.001, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False},
    float32_hyperparams=("rho", "momentum"),
    exact_hyperparams=("epsilon",),
    slots_type=LegacyRMSpropSlots,
    slots=(Slot("rms"), Slot("momentum", when=momentum_is_on), Slot("mg", when=_centered)),
    slot_order=(("rms",), ("momentum",), ("mg",)),
    update=legacy_update,
    prepare=(complement("rho"),),
    sparse_update=legacy_sparse_update,
    adjust_weights=pad_missing_iterations,
    time_decay=True,
    check_args=_check_legacy,
    non_number_errors={"momentum": TypeError},  # `momentum < 0`
)

CURRENT = Spec(
    family="current",
    defaults={"learning_rate": 0.001, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False},
    float32_hyperparams=(),
    exact_hyperparams=("rho", "momentum", "epsilon"),
    derived=(Derived("one_minus_rho", "rho", one_minus),),
    slots_type=RMSpropSlots,
    slots=(Slot("velocity"), Slot("momentum", when=momentum_is_on), Slot("average_gradient", when=_centered)),
    slot_order=(("velocity",), ("momentum",), ("average_gradient",)),
    update=current_update,
    sparse_update=current_sparse_update,
    base_defaults={"ema_overwrite_frequency": 100},  # TF-Keras's RMSprop default
    check_args=with_momentum_slot,
    non_number_errors={"momentum": TypeError},  # `if self.momentum > 0` (in build)
)


# Keras 3 divides by sqrt; its default ema_overwrite_frequency is None.
KERAS3 = dataclasses.replace(CURRENT, family="keras3", update=keras3_update, base_defaults={}, sparse_update=None)
