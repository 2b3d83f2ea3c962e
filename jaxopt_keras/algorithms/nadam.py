"""Nadam: Adam with Nesterov momentum and Dozat's momentum schedule.

The two families differ most here:

* legacy: the momentum schedule ``mu_t = beta_1 * (1 - 0.5 * 0.96**(decay * t))``
  uses ``decay`` (default 0.004, settable only as ``schedule_decay``; like
  TF-Keras, a ``decay`` argument is ignored), the running product of the
  ``mu_t`` is the weight ``momentum_cache``, and schedules are refused for
  the learning rate.
* current: the schedule is fixed at ``beta_1 * (1 - 0.5 * 0.96**t)`` and
  the running product ``u_product`` is state that Keras does not list in its
  weights; learning-rate schedules are allowed.
"""

from __future__ import annotations

import dataclasses

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core.state import local_step
from jaxopt_keras.schedules.base import is_schedule
from jaxopt_keras.algorithms.parts import Prepared, Scalar, Slot, Static
from jaxopt_keras.algorithms.spec import Coefficients, Spec, legacy_epsilon
from jaxopt_keras.core.sparse import IndexedSlices, gather, scatter_add

# `tf.cast(0.96, var_dtype)`: the Python float becomes float32 first.
_DECAY_BASE = float(np.float32(0.96))
# Keras 3's `ops.cast(0.96, var_dtype)` and `ops.power(0.96, t)`: one rounding, to the dtype.
_KERAS3_DECAY_BASE = 0.96


class NadamSlots(NamedTuple):
    """Nadam's slots: first moment ``m`` and second moment ``v``."""

    m: Any
    v: Any


def _legacy_mu(c: Coefficients, k: int, dtype) -> jax.Array:
    t = local_step(c.iterations, k, dtype)
    # `self._initial_decay * local_step`: the constructor's Python float meets the tensor directly.
    return c.beta_1 * (1.0 - 0.5 * jnp.power(jnp.asarray(_DECAY_BASE, dtype), jnp.asarray(c.initial_decay, dtype) * t))


class _Schedule(NamedTuple):
    """One step's momentum schedule: ``t``, ``mu_t``, ``mu_{t+1}``, and the
    running products through ``t`` and ``t + 1``."""

    t: jax.Array
    mu: jax.Array
    mu_next: jax.Array
    product: jax.Array
    product_next: jax.Array


def _legacy_schedule(c: Coefficients, dtype) -> _Schedule:
    """``mu_t``, ``mu_{t+1}``, ``momentum_cache * mu_t`` and that times ``mu_{t+1}``."""
    mu, mu_next = _legacy_mu(c, 1, dtype), _legacy_mu(c, 2, dtype)
    product = c.momentum_cache * mu
    return _Schedule(local_step(c.iterations, 1, dtype), mu, mu_next, product, product * mu_next)


def legacy_update(g: jax.Array, p: jax.Array | None, s: NadamSlots, c: Coefficients):
    """One legacy Nadam step (``OptimizerV2`` Nadam)::

        mu_t   = beta_1 * (1 - 0.5 * 0.96**(decay * t))
        mu_t1  = beta_1 * (1 - 0.5 * 0.96**(decay * (t + 1)))
        sched  = momentum_cache * mu_t ;  sched_next = sched * mu_t1
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        m_bar = (1 - mu_t) * g / (1 - sched) + mu_t1 * m / (1 - sched_next)
        p = p - lr * m_bar / (sqrt(v / (1 - beta_2**t)) + epsilon)

    The schedule is the same for every parameter of a dtype: :data:`LEGACY`
    prepares it once per step.  (The ``1 - x`` terms stay here: computed
    apart from this loop, XLA:CPU contracts the step differently.)
    """
    k = c.schedule
    g_prime = g / (1.0 - k.product)
    m = c.beta_1 * s.m + (1 - c.beta_1) * g
    m_t_prime = m / (1.0 - k.product_next)
    v = c.beta_2 * s.v + (1 - c.beta_2) * jnp.square(g)
    v_t_prime = v / (1.0 - jnp.power(c.beta_2, k.t))
    m_t_bar = (1.0 - k.mu) * g_prime + k.mu_next * m_t_prime
    return -(c.learning_rate * m_t_bar / (jnp.sqrt(v_t_prime) + c.epsilon)), NadamSlots(m, v)


def legacy_advance(scalars: dict, c: Coefficients) -> dict:
    """``momentum_cache <- momentum_cache * mu_t``, in the cache's dtype."""
    dtype = scalars["momentum_cache"].dtype
    return {"momentum_cache": scalars["momentum_cache"] * _legacy_mu(c, 1, dtype)}


def _u_at(beta_1: jax.Array, iterations: jax.Array, k: int, dtype, base: float = _DECAY_BASE) -> jax.Array:
    """``u_t = beta_1 * (1 - 0.5 * 0.96**t)`` at ``t = iterations + k``."""
    t = local_step(iterations, k, dtype)
    return beta_1 * (1.0 - 0.5 * jnp.power(jnp.asarray(base, dtype), t))


def _current_u(c: Coefficients, k: int, dtype, base: float = _DECAY_BASE) -> jax.Array:
    return _u_at(c.beta_1, c.iterations, k, dtype, base)


def _current_schedule(c: Coefficients, dtype) -> _Schedule:
    """``u_t``, ``u_{t+1}``, ``u_product * u_t`` and that times ``u_{t+1}``."""
    u, u_next = _current_u(c, 1, dtype), _current_u(c, 2, dtype)
    product = c.u_product * u
    return _Schedule(local_step(c.iterations, 1, dtype), u, u_next, product, product * u_next)


def current_update(g: jax.Array, p: jax.Array | None, s: NadamSlots, c: Coefficients):
    """One current-family Nadam step::

        u_t  = beta_1 * (1 - 0.5 * 0.96**t) ;  u_t1 = beta_1 * (1 - 0.5 * 0.96**(t+1))
        prod = u_product * u_t ;  prod_next = prod * u_t1
        m = m + (g - m) * (1 - beta_1) ;  v = v + (g**2 - v) * (1 - beta_2)
        m_hat = u_t1 * m / (1 - prod_next) + (1 - u_t) * g / (1 - prod)
        p = p - m_hat * lr / (sqrt(v / (1 - beta_2**t)) + epsilon)

    The schedule is prepared once per step and dtype (:data:`CURRENT`).
    """
    return _nadam_step(g, s, c, c.schedule)


def keras3_update(g: jax.Array, p: jax.Array | None, s: NadamSlots, c: Coefficients):
    """One Keras 3 Nadam step: as :func:`current_update`, with ``u_product``
    already advanced for this step (:func:`keras3_advance` runs first)::

        prod = u_product ;  prod_next = prod * u_t1
    """
    return _nadam_step(g, s, c, c.schedule)


def _keras3_schedule(c: Coefficients, dtype) -> _Schedule:
    u, u_next = _current_u(c, 1, dtype, _KERAS3_DECAY_BASE), _current_u(c, 2, dtype, _KERAS3_DECAY_BASE)
    return _Schedule(local_step(c.iterations, 1, dtype), u, u_next, c.u_product, c.u_product * u_next)


def _nadam_step(g, s: NadamSlots, c: Coefficients, k: _Schedule):
    m = s.m + (g - s.m) * (1 - c.beta_1)
    v = s.v + (jnp.square(g) - s.v) * (1 - c.beta_2)
    m_hat = k.mu_next * m / (1 - k.product_next) + (1 - k.mu) * g / (1 - k.product)
    v_hat = v / (1 - jnp.power(c.beta_2, k.t))
    return -(m_hat * c.learning_rate / (jnp.sqrt(v_hat) + c.epsilon)), NadamSlots(m, v)


def keras3_advance(scalars: dict, c: Coefficients) -> dict:
    """Keras 3, once per step before the math: ``u_product <- (u_product * beta_1) *
    (1 - 0.5 * 0.96**t)`` in its own dtype (TF-Keras multiplies ``u_product * (beta_1 * ...)``)."""
    u = scalars["u_product"]
    t = local_step(c.iterations, 1, u.dtype)
    return {"u_product": (u * c.beta_1) * (1.0 - 0.5 * jnp.power(jnp.asarray(_KERAS3_DECAY_BASE, u.dtype), t))}


def current_advance(scalars: dict, c: Coefficients) -> dict:
    """``u_product <- u_product * u_t``, in its own dtype."""
    dtype = scalars["u_product"].dtype
    return {"u_product": scalars["u_product"] * _current_u(c, 1, dtype)}


@jax.jit
def u_product_loop(beta_1: jax.Array, iterations: jax.Array, dtype_of: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(prod_{i=1..iterations} u_i, trips)``: the product multiplied in order in
    ``dtype_of``'s dtype, and how many factors the loop multiplied.

    The product falls geometrically (each factor is below ``beta_1 < 1``) and
    reaches exactly 0 after a few thousand factors in float32 and float64, and
    stays there: the loop stops at that point, so its trip count (and time) is
    bounded whatever ``iterations`` is (so it is for ``beta_1 == 1``, where the
    factors reach exactly 1, and for a non-finite product).  The counter starts
    at 0 and never exceeds ``iterations``, so it cannot overflow, even at the
    counter's maximum.
    """
    dtype = dtype_of.dtype
    one = jnp.ones([], dtype)

    def cond(carry):
        i, prod, u = carry
        return (i < iterations) & (prod != 0) & (u != 1) & jnp.isfinite(prod)

    def body(carry):
        i, prod, _ = carry
        u = _u_at(beta_1, i, 1, dtype)
        return i + 1, prod * u, u

    trips, prod, _ = jax.lax.while_loop(cond, body, (jnp.zeros_like(iterations), one, jnp.zeros([], dtype)))
    return prod, trips


def current_restore_u_product(state: Any) -> Any:
    """Current Nadam, after ``set_weights``: rebuilds ``u_product`` from the step count.

    TF-Keras does not list ``u_product`` among the weights; a continuation
    from a weights list must still use the product of the momentum schedule
    accumulated in order and in its dtype, exactly as the uninterrupted run.
    """
    u = state.scalars["u_product"]
    prod, _ = u_product_loop(state.hyperparams["beta_1"].astype(u.dtype), state.iterations, u)
    return state._replace(scalars=dict(state.scalars, u_product=prod))


def legacy_sparse_update(g: IndexedSlices, p, s: NadamSlots, c: Coefficients):
    """Legacy Nadam on rows: ``m``/``v`` decay everywhere, the parameter moves on rows::

        m = m * beta_1 ; m[i] += g_i * (1 - beta_1) ;  v likewise with g_i**2
        p[i] -= lr * m_bar_i / (sqrt(v[i] / (1 - beta_2**t)) + epsilon)
    """
    idx, gv = g.indices, g.values
    k = _legacy_schedule(c, gv.dtype)
    g_prime = gv / (1.0 - k.product)
    m = scatter_add(s.m * c.beta_1, idx, gv * (1 - c.beta_1))
    m_t_prime = gather(m, idx) / (1.0 - k.product_next)
    m_t_bar = (1.0 - k.mu) * g_prime + k.mu_next * m_t_prime
    v = scatter_add(s.v * c.beta_2, idx, gv * gv * (1 - c.beta_2))
    v_t_prime = gather(v, idx) / (1.0 - jnp.power(c.beta_2, k.t))
    rows = -c.learning_rate * m_t_bar / (jnp.sqrt(v_t_prime) + c.epsilon)
    return g.with_values(rows), NadamSlots(m, v)


def current_sparse_update(g: IndexedSlices, p, s: NadamSlots, c: Coefficients):
    """Current-family Nadam on rows: as dense, with the moments updated by row and
    the gradient term of ``m_hat`` taken dense."""
    idx, gv = g.indices, g.values
    k = _current_schedule(c, gv.dtype)
    m = scatter_add(s.m + -s.m * (1 - c.beta_1), idx, gv * (1 - c.beta_1))
    v = scatter_add(s.v + -s.v * (1 - c.beta_2), idx, jnp.square(gv) * (1 - c.beta_2))
    g_term = g.with_values((1 - k.mu) * gv / (1 - k.product)).to_dense()
    m_hat = k.mu_next * m / (1 - k.product_next) + g_term
    v_hat = v / (1 - jnp.power(c.beta_2, k.t))
    return -(m_hat * c.learning_rate / (jnp.sqrt(v_hat) + c.epsilon)), NadamSlots(m, v)

def _check_legacy(args: dict) -> dict:
    lr = args.get("lr", args["learning_rate"])
    if is_schedule(lr) and not LEGACY.is_host_callable("learning_rate", lr):  # `lambda: 0.1` is fine
        raise ValueError(
            "The Nadam optimizer does not support tf.keras.optimizers.LearningRateSchedules "
            "as the learning rate."
        )
    schedule_decay = args.pop("schedule_decay", 0.004)
    if args["decay"] not in (0.0, schedule_decay):
        warnings.warn(
            f"legacy Nadam ignores `decay={args['decay']}`, as TF-Keras does: its momentum "
            f"schedule uses `schedule_decay` (here {schedule_decay}).",
            UserWarning,
            stacklevel=5,
        )
    args["decay"] = schedule_decay
    return legacy_epsilon(args)


LEGACY = Spec(
    family="legacy",
    singular={"beta_2": 1.0},
    defaults={"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    float32_hyperparams=("beta_1", "beta_2"),
    # The `decay` hyperparameter OptimizerV2 keeps (`_set_hyper`); its math
    # reads the constructor's `_initial_decay` instead, the static below.
    exact_hyperparams=("epsilon", "decay"),
    statics=(Static("initial_decay", lambda args: float(args["decay"])),),
    slots_type=NadamSlots,
    slots=(Slot("m"), Slot("v")),
    slot_order=(("m",), ("v",)),
    update=legacy_update,
    prepare=(Prepared("schedule", lambda c: _legacy_schedule(c, c.learning_rate.dtype)),),
    sparse_update=legacy_sparse_update,
    scalars=(Scalar("momentum_cache", 1.0),),
    advance=legacy_advance,
    check_args=_check_legacy,
    non_number_errors={"schedule_decay": TypeError},  # `schedule_decay < 0.0`
    ignored=("decay",),  # TF-Keras overwrites it with `schedule_decay`
    # get_config reports the schedule decay as "decay"; reading a config back
    # must restore it (TF-Keras's own from_config resets it to 0.004).
    config_to_args={"decay": "schedule_decay"},
    extra_args={"schedule_decay": 0.004},
)

CURRENT = Spec(
    family="current",
    singular={"beta_2": 1.0},
    defaults={"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    float32_hyperparams=("beta_1", "beta_2"),  # tf.cast(self.beta_1, dtype)
    exact_hyperparams=("epsilon",),
    slots_type=NadamSlots,
    slots=(Slot("m"), Slot("v")),
    slot_order=(("m", "v"),),
    update=current_update,
    prepare=(Prepared("schedule", lambda c: _current_schedule(c, c.learning_rate.dtype)),),
    sparse_update=current_sparse_update,
    scalars=(Scalar("u_product", 1.0, in_weights=False),),
    advance=current_advance,
    after_load=current_restore_u_product,
)


# Keras 3: u_product advances before the math and is listed last in `variables`.
KERAS3 = dataclasses.replace(
    CURRENT,
    family="keras3",
    update=keras3_update,
    prepare=(Prepared("schedule", lambda c: _keras3_schedule(c, c.learning_rate.dtype)),),
    sparse_update=None,
    scalars=(Scalar("u_product", 1.0),),
    advance=keras3_advance,
    advance_first=True,
    after_load=None,
    slot_names={"m": "momentum", "v": "velocity"},
)
