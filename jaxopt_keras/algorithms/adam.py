"""Adam, in the legacy (OptimizerV2) and current Keras families.

Both families compute the same Adam with Keras's "epsilon hat" placement
(epsilon added to ``sqrt(v)`` after folding the bias corrections into the
step size); they differ in where the hyperparameters are rounded:

* legacy: ``beta_1``/``beta_2``/``learning_rate`` are float32 variables
  (``_set_hyper``), ``decay`` divides the learning rate, and the update is
  TensorFlow's fused ``ResourceApplyAdam`` kernel;
* current: ``beta_1``/``beta_2``/``epsilon`` are Python floats (so
  ``1 - beta_1`` is computed in double precision), there is no ``decay``, and
  ``adaptive_epsilon`` optionally scales epsilon by ``sqrt(1 - beta_2**t)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_keras.algorithms.base import (
    Coefficients,
    Numerics,
    Slot,
    build_optimizer,
    drop_unused_vhat,
    legacy_epsilon,
    local_step,
    named_arguments,
    one_minus,
)
from jaxopt_keras.core.transform import GradientTransformation
from jaxopt_keras.core.sparse import IndexedSlices, scatter_add
from jaxopt_keras.core.hyperparams import Derived


class AdamSlots(NamedTuple):
    """Adam's slots: first moment ``m``, second moment ``v``, and ``vhat``
    (the running maximum of ``v``; ``None`` unless ``amsgrad``)."""

    m: Any
    v: Any
    vhat: Any


def legacy_update(g: jax.Array, p: jax.Array | None, s: AdamSlots, c: Coefficients):
    """One legacy Adam step (``ResourceApplyAdam[WithAmsgrad]``)::

        t = iterations + 1
        alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m = m + (g - m) * (1 - beta_1)
        v = v + (g**2 - v) * (1 - beta_2)
        vhat = max(vhat, v)                       (amsgrad)
        p = p - m * alpha / (sqrt(v or vhat) + epsilon)
    """
    t = local_step(c.iterations, 1, g.dtype)
    alpha = c.learning_rate * jnp.sqrt(1 - c.beta_2**t) / (1 - c.beta_1**t)
    m = s.m + (g - s.m) * (1 - c.beta_1)
    v = s.v + (jnp.square(g) - s.v) * (1 - c.beta_2)
    vhat = None if s.vhat is None else jnp.maximum(s.vhat, v)
    denom = jnp.sqrt(v if vhat is None else vhat) + c.epsilon
    return -((m * alpha) / denom), AdamSlots(m, v, vhat)


def current_update(g: jax.Array, p: jax.Array | None, s: AdamSlots, c: Coefficients):
    """One current-family Adam step (``tf.keras.optimizers.Adam.update_step``)::

        t = iterations + 1
        alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m = m + (g - m) * (1 - beta_1)            (1 - beta_1 in double)
        v = v + (g**2 - v) * (1 - beta_2)
        vhat = max(vhat, v)                       (amsgrad)
        eps = epsilon * sqrt(1 - beta_2**t)       (adaptive_epsilon, else epsilon)
        p = p - m * alpha / (sqrt(v or vhat) + eps)
    """
    t = local_step(c.iterations, 1, g.dtype)
    beta_1_power = c.beta_1**t
    beta_2_power = c.beta_2**t
    alpha = c.learning_rate * jnp.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    epsilon = c.epsilon * jnp.sqrt(1 - beta_2_power) if c.get("adaptive_epsilon") else c.epsilon
    m = s.m + (g - s.m) * c.one_minus_beta_1
    v = s.v + (jnp.square(g) - s.v) * c.one_minus_beta_2
    vhat = None if s.vhat is None else jnp.maximum(s.vhat, v)
    denom = jnp.sqrt(v if vhat is None else vhat) + epsilon
    return -((m * alpha) / denom), AdamSlots(m, v, vhat)


def legacy_sparse_update(g: IndexedSlices, p, s: AdamSlots, c: Coefficients):
    """Legacy Adam on rows: the moments decay everywhere, the parameter moves everywhere::

        lr_t = lr * (sqrt(1 - beta_2**t) / (1 - beta_1**t))
        m = m * beta_1 ; m[i] += g_i * (1 - beta_1)
        v = v * beta_2 ; v[i] += g_i * g_i * (1 - beta_2)
        p = p - lr_t * m / (sqrt(v or max(vhat, v)) + epsilon)
    """
    idx, gv = g.indices, g.values
    t = local_step(c.iterations, 1, gv.dtype)
    lr = c.learning_rate * (jnp.sqrt(1 - c.beta_2**t) / (1 - c.beta_1**t))
    m = scatter_add(s.m * c.beta_1, idx, gv * (1 - c.beta_1))
    v = scatter_add(s.v * c.beta_2, idx, gv * gv * (1 - c.beta_2))
    vhat = None if s.vhat is None else jnp.maximum(s.vhat, v)
    denom = jnp.sqrt(v if vhat is None else vhat) + c.epsilon
    return -(lr * m / denom), AdamSlots(m, v, vhat)


def current_sparse_update(g: IndexedSlices, p, s: AdamSlots, c: Coefficients):
    """Current-family Adam on rows::

        m = m - m * (1 - beta_1) ; m[i] += g_i * (1 - beta_1)
        v = v - v * (1 - beta_2) ; v[i] += g_i**2 * (1 - beta_2)
        p = p - m * alpha / (sqrt(v or max(vhat, v)) + eps)
    """
    idx, gv = g.indices, g.values
    t = local_step(c.iterations, 1, gv.dtype)
    beta_2_power = c.beta_2**t
    alpha = c.learning_rate * jnp.sqrt(1 - beta_2_power) / (1 - c.beta_1**t)
    epsilon = c.epsilon * jnp.sqrt(1 - beta_2_power) if c.get("adaptive_epsilon") else c.epsilon
    m = scatter_add(s.m + -s.m * c.one_minus_beta_1, idx, gv * c.one_minus_beta_1)
    v = scatter_add(s.v + -s.v * c.one_minus_beta_2, idx, jnp.square(gv) * c.one_minus_beta_2)
    vhat = None if s.vhat is None else jnp.maximum(s.vhat, v)
    denom = jnp.sqrt(v if vhat is None else vhat) + epsilon
    return -((m * alpha) / denom), AdamSlots(m, v, vhat)

def _amsgrad(args) -> bool:
    return bool(args["amsgrad"])


LEGACY = Numerics(
    family="legacy",
    class_name="Adam",
    defaults={"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False},
    float32_hyperparams=("beta_1", "beta_2"),
    exact_hyperparams=("epsilon",),
    slots_type=AdamSlots,
    slots=(Slot("m"), Slot("v"), Slot("vhat", when=_amsgrad)),
    slot_order=(("m",), ("v",), ("vhat",)),
    update=legacy_update,
    sparse_update=legacy_sparse_update,
    adjust_weights=drop_unused_vhat,
    time_decay=True,
    check_args=legacy_epsilon,
)

CURRENT = Numerics(
    family="current",
    class_name="Adam",
    defaults={
        "learning_rate": 0.001,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "amsgrad": False,
        "adaptive_epsilon": False,
    },
    # `tf.cast(self.beta_1, dtype)` converts the Python float to float32 first.
    float32_hyperparams=("beta_1", "beta_2"),
    exact_hyperparams=("epsilon",),
    derived=(Derived("one_minus_beta_1", "beta_1", one_minus), Derived("one_minus_beta_2", "beta_2", one_minus)),
    slots_type=AdamSlots,
    slots=(Slot("m"), Slot("v"), Slot("vhat", when=_amsgrad)),
    slot_order=(("m", "v"), ("vhat",)),
    update=current_update,
    sparse_update=current_sparse_update,
)


def legacy_adam(
    learning_rate: Any = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    amsgrad: bool = False,
    name: str = "Adam",
    *,
    decay: float = 0.0,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    slot_dtype: Any = None,
    **kwargs: Any,
) -> GradientTransformation:
    """Adam as ``tf.keras.optimizers.legacy.Adam`` computes it.

    See :func:`legacy_update` for the step.  ``learning_rate`` may be a float,
    a schedule or a callable of the step count; ``decay`` divides it by
    ``1 + decay * iterations``.  ``lr`` is accepted as a deprecated alias.

    Returns:
      ``(init, update)``, preceded by clipping in Keras's order when a
      clipping argument is set.
    """
    return build_optimizer(LEGACY, named_arguments(locals()), kwargs)


def adam(
    learning_rate: Any = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    amsgrad: bool = False,
    name: str = "Adam",
    *,
    adaptive_epsilon: bool = False,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    slot_dtype: Any = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
    jit_compile: bool = True,
    loss_scale_factor: float | None = None,
    gradient_accumulation_steps: int | None = None,
    **kwargs: Any,
) -> GradientTransformation:
    """Adam as ``tf.keras.optimizers.Adam`` (Keras >= 2.11, Keras 3) computes it.

    See :func:`current_update` for the step.

    Returns:
      ``(init, update)``, preceded by clipping when a clipping argument is set.
    """
    return build_optimizer(CURRENT, named_arguments(locals()), kwargs)
