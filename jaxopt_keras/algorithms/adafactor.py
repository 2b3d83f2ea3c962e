"""Adafactor: second moments factored into row and column statistics.

For a parameter of rank >= 2 the slots ``r`` (shape ``p.shape[:-1]``) and
``c`` (``p.shape[:-2] + p.shape[-1:]``) replace a full second moment, which
is rebuilt as their outer product ``v``; rank-0/1 parameters keep a full
``v``.  Keras lists ``r``/``c`` only for factored parameters.  Current family
only.
"""

from __future__ import annotations

import dataclasses

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxopt_keras.core.state import filled, local_step, slot_dtype
from jaxopt_keras.core.xla import recomputed
from jaxopt_keras.algorithms.parts import Slot, Static
from jaxopt_keras.algorithms.spec import Coefficients, Spec
from jaxopt_keras.schedules.base import LearningRateSchedule, is_schedule


class AdafactorSlots(NamedTuple):
    """Row statistics ``r``, column statistics ``c`` (placeholders for rank < 2),
    and the second-moment estimate ``v``."""

    r: Any
    c: Any
    v: Any


def _factored(shape) -> bool:
    return len(shape) >= 2


def _unfactored(shape) -> bool:
    return len(shape) < 2


def _r_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The row statistics' shape: the last axis reduced; ``()`` below rank 2."""
    return shape[:-1] if len(shape) >= 2 else ()


def _c_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The column statistics' shape: the second-to-last axis reduced; ``()`` below rank 2."""
    return shape[:-2] + shape[-1:] if len(shape) >= 2 else ()


def _init_r(param: jax.Array, args) -> jax.Array:
    return filled(param, 0, slot_dtype(param, args), shape=_r_shape(param.shape))


def _init_c(param: jax.Array, args) -> jax.Array:
    return filled(param, 0, slot_dtype(param, args), shape=_c_shape(param.shape))


def _keras3_mean(x: jax.Array, axis=None, keepdims: bool = False) -> jax.Array:
    """Keras 3's ``ops.mean`` on JAX: summed and divided in float32 whatever the
    float dtype (its ``dtypes.result_type(x.dtype, "float32")`` is float32 on this
    backend, even for float64), then cast back to ``x``'s dtype."""
    return jnp.mean(x, axis=axis, keepdims=keepdims, dtype=jnp.float32).astype(x.dtype)


def _rms(x: jax.Array, mean=jnp.mean) -> jax.Array:
    return jnp.sqrt(mean(jnp.square(x)))


def current_update(g: jax.Array, p: jax.Array, s: AdafactorSlots, c: Coefficients):
    """One Adafactor step (``tf.keras.optimizers.Adafactor.update_step``)::

        t = iterations + 1
        lr = min(lr, 1 / sqrt(t))                (relative_step, unless a schedule)
        alpha = max(epsilon_2, rms(p)) * min(lr, 1 / sqrt(t))
        g2 = g**2 + epsilon_1 ;  beta_2_t = 1 - t**beta_2_decay
        rank >= 2:  r = beta_2_t r + (1 - beta_2_t) mean(g2, -1)
                    c = beta_2_t c + (1 - beta_2_t) mean(g2, -2)
                    v = (r / mean(r, -1))[..., None] * c[..., None, :]
        else:       v = beta_2_t v + (1 - beta_2_t) g2
        u = g / sqrt(v) ;  u = u / max(1, rms(u) / clip_threshold)
        p = p - alpha * u
    """
    return _step(g, p, s, c, lax.rsqrt, lambda g, v: g * lax.rsqrt(v), share_u=False, mean=jnp.mean)


def keras3_update(g: jax.Array, p: jax.Array, s: AdafactorSlots, c: Coefficients):
    """One Keras 3 Adafactor step: as :func:`current_update`, with ``1 / sqrt(t)``
    and ``g / sqrt(v)`` where TF-Keras uses ``rsqrt``; a callable learning rate,
    like a schedule, is not capped by ``relative_step``."""
    return _step(g, p, s, c, lambda t: 1 / jnp.sqrt(t), lambda g, v: g / jnp.sqrt(v), share_u=True, mean=_keras3_mean)


def _step(g, p, s: AdafactorSlots, c: Coefficients, inv_sqrt, scaled, share_u: bool, mean):
    dtype = g.dtype
    t = local_step(c.iterations, 1, dtype)
    lr = c.learning_rate
    if c.relative_step and not c.learning_rate_is_schedule:
        lr = jnp.minimum(lr, inv_sqrt(t))
    rho_t = jnp.minimum(lr, inv_sqrt(t))
    alpha_t = jnp.maximum(c.epsilon_2, _rms(p, mean)) * rho_t
    regulated = jnp.square(g) + c.epsilon_1
    beta_2_t = 1 - jnp.power(t, c.beta_2_decay)
    if g.ndim >= 2:
        r = beta_2_t * s.r + (1 - beta_2_t) * mean(regulated, axis=-1)
        col = beta_2_t * s.c + (1 - beta_2_t) * mean(regulated, axis=-2)
        v = jnp.expand_dims(r / mean(r, axis=-1, keepdims=True), -1) * jnp.expand_dims(col, -2)
    else:
        r, col = s.r, s.c
        v = beta_2_t * s.v + (1 - beta_2_t) * regulated
    u = scaled(g, v)
    # TF-Keras: rms(u) and the update each compute u in their own loop (no stored
    # temporary).  Keras 3 shares u, and XLA then folds the clipping's division
    # differently: sharing it keeps the bits Keras 3 gets.
    u_again = u if share_u else recomputed(scaled, g, v)
    u_hat = u_again / jnp.maximum(jnp.asarray(1.0, dtype), _rms(u, mean) / c.clip_threshold)
    return -alpha_t * u_hat, AdafactorSlots(r, col, v)


def _lr_is_schedule(args) -> bool:
    return isinstance(args["learning_rate"], LearningRateSchedule)


CURRENT = Spec(
    family="current",
    defaults={
        "learning_rate": 0.001,
        "beta_2_decay": -0.8,
        "epsilon_1": 1e-30,
        "epsilon_2": 1e-3,
        "clip_threshold": 1.0,
        "relative_step": True,
    },
    float32_hyperparams=("epsilon_2",),  # tf.cast(self.epsilon_2, dtype)
    exact_hyperparams=("beta_2_decay", "epsilon_1", "clip_threshold"),
    slots_type=AdafactorSlots,
    slots=(
        Slot("r", init=_init_r, listed=_factored, shape=_r_shape),
        Slot("c", init=_init_c, listed=_factored, shape=_c_shape),
        Slot("v"),
    ),
    slot_order=(("r", "c", "v"),),
    update=current_update,
    needs_params=True,
    elementwise=False,
    statics=(Static("relative_step"), Static("learning_rate_is_schedule", _lr_is_schedule)),
)


def _init_dummy_or(init):
    """Keras 3 keeps an int32 0 in place of ``r``/``c`` for a parameter of rank < 2
    (a placeholder: int32 with any ``slot_dtype``)."""

    def make(param: jax.Array, args) -> jax.Array:
        if param.ndim < 2:
            return filled(param, 0, dtype=jnp.int32, shape=())
        return init(param, args)

    return make


KERAS3 = dataclasses.replace(
    CURRENT,
    family="keras3",
    update=keras3_update,
    slots=(
        # The placeholders are bare backend.Variables, listed by attribute tracking only: not under LossScaleOptimizer.
        Slot("r", init=_init_dummy_or(_init_r), shape=_r_shape, placeholder=_unfactored),
        Slot("c", init=_init_dummy_or(_init_c), shape=_c_shape, placeholder=_unfactored),
        Slot("v"),
    ),
    slot_names={"r": "", "c": "", "v": "velocity"},  # r, c: named by the variable's name alone
    statics=(Static("relative_step"), Static("learning_rate_is_schedule", lambda args: is_schedule(args["learning_rate"]))),
)
