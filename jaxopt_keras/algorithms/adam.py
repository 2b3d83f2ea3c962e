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

import dataclasses

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_keras.algorithms.parts import STEP, Prepared, Slot, Static, complement
from jaxopt_keras.algorithms.spec import Coefficients, Spec, legacy_epsilon, one_minus
from jaxopt_keras.core.sparse import IndexedSlices, scatter_add
from jaxopt_keras.core.hyperparams import Derived


class AdamSlots(NamedTuple):
    """Adam's slots: first moment ``m``, second moment ``v``, and ``vhat``
    (the running maximum of ``v``; ``None`` unless ``amsgrad``)."""

    m: Any
    v: Any
    vhat: Any


def step_size(c: Coefficients) -> jax.Array:
    """``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``, once per step and dtype."""
    return c.learning_rate * jnp.sqrt(1 - c.beta_2**c.t) / (1 - c.beta_1**c.t)


def adaptive_epsilon(c: Coefficients) -> jax.Array:
    """``epsilon * sqrt(1 - beta_2**t)`` with ``adaptive_epsilon``, else ``epsilon``."""
    return c.epsilon * jnp.sqrt(1 - c.beta_2**c.t) if c.adaptive_epsilon else c.epsilon


def legacy_update(g: jax.Array, p: jax.Array | None, s: AdamSlots, c: Coefficients):
    """One legacy Adam step (``ResourceApplyAdam[WithAmsgrad]``)::

        t = iterations + 1
        alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m = m + (g - m) * (1 - beta_1)
        v = v + (g**2 - v) * (1 - beta_2)
        vhat = max(vhat, v)                       (amsgrad)
        p = p - m * alpha / (sqrt(v or vhat) + epsilon)

    ``alpha`` and ``1 - beta`` are the same for every parameter of a dtype:
    :data:`LEGACY` prepares them once per step.
    """
    m = s.m + (g - s.m) * c.one_minus_beta_1
    v = s.v + (jnp.square(g) - s.v) * c.one_minus_beta_2
    vhat = None if s.vhat is None else jnp.maximum(s.vhat, v)
    denom = jnp.sqrt(v if vhat is None else vhat) + c.epsilon
    return -((m * c.alpha) / denom), AdamSlots(m, v, vhat)


def current_update(g: jax.Array, p: jax.Array | None, s: AdamSlots, c: Coefficients):
    """One current-family Adam step (``tf.keras.optimizers.Adam.update_step``)::

        t = iterations + 1
        alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m = m + (g - m) * (1 - beta_1)            (1 - beta_1 in double)
        v = v + (g**2 - v) * (1 - beta_2)
        vhat = max(vhat, v)                       (amsgrad)
        eps = epsilon * sqrt(1 - beta_2**t)       (adaptive_epsilon, else epsilon)
        p = p - m * alpha / (sqrt(v or vhat) + eps)

    ``alpha`` and ``eps`` are prepared once per step and dtype (:data:`CURRENT`).
    """
    m = s.m + (g - s.m) * c.one_minus_beta_1
    v = s.v + (jnp.square(g) - s.v) * c.one_minus_beta_2
    vhat = None if s.vhat is None else jnp.maximum(s.vhat, v)
    denom = jnp.sqrt(v if vhat is None else vhat) + c.epsilon_t
    return -((m * c.alpha) / denom), AdamSlots(m, v, vhat)


def legacy_sparse_update(g: IndexedSlices, p, s: AdamSlots, c: Coefficients):
    """Legacy Adam on rows: the moments decay everywhere, the parameter moves everywhere::

        lr_t = lr * (sqrt(1 - beta_2**t) / (1 - beta_1**t))
        m = m * beta_1 ; m[i] += g_i * (1 - beta_1)
        v = v * beta_2 ; v[i] += g_i * g_i * (1 - beta_2)
        p = p - lr_t * m / (sqrt(v or max(vhat, v)) + epsilon)
    """
    idx, gv = g.indices, g.values
    lr = c.learning_rate * (jnp.sqrt(1 - c.beta_2**c.t) / (1 - c.beta_1**c.t))
    m = scatter_add(s.m * c.beta_1, idx, gv * c.one_minus_beta_1)
    v = scatter_add(s.v * c.beta_2, idx, gv * gv * c.one_minus_beta_2)
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
    m = scatter_add(s.m + -s.m * c.one_minus_beta_1, idx, gv * c.one_minus_beta_1)
    v = scatter_add(s.v + -s.v * c.one_minus_beta_2, idx, jnp.square(gv) * c.one_minus_beta_2)
    vhat = None if s.vhat is None else jnp.maximum(s.vhat, v)
    denom = jnp.sqrt(v if vhat is None else vhat) + c.epsilon_t
    return -((m * c.alpha) / denom), AdamSlots(m, v, vhat)

def _amsgrad(args) -> bool:
    return bool(args["amsgrad"])


def drop_unused_vhat(n_expected: int, weights: list) -> list:
    """OptimizerV2 Adam: a list with ``vhat`` slots loads into a non-amsgrad Adam."""
    num_vars = int((n_expected - 1) / 2)
    if len(weights) == 3 * num_vars + 1:
        return list(weights)[:n_expected]
    return weights


LEGACY = Spec(
    family="legacy",
    singular={"beta_1": 1.0},
    defaults={"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False},
    float32_hyperparams=("beta_1", "beta_2"),
    exact_hyperparams=("epsilon",),
    slots_type=AdamSlots,
    slots=(Slot("m"), Slot("v"), Slot("vhat", when=_amsgrad)),
    slot_order=(("m",), ("v",), ("vhat",)),
    update=legacy_update,
    prepare=(STEP, Prepared("alpha", step_size), complement("beta_1"), complement("beta_2")),
    sparse_update=legacy_sparse_update,
    adjust_weights=drop_unused_vhat,
    time_decay=True,
    check_args=legacy_epsilon,
)

CURRENT = Spec(
    family="current",
    singular={"beta_1": 1.0},
    defaults={
        "learning_rate": 0.001,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "adaptive_epsilon": False,
        "amsgrad": False,
    },
    # `tf.cast(self.beta_1, dtype)` converts the Python float to float32 first.
    float32_hyperparams=("beta_1", "beta_2"),
    exact_hyperparams=("epsilon",),
    derived=(Derived("one_minus_beta_1", "beta_1", one_minus), Derived("one_minus_beta_2", "beta_2", one_minus)),
    slots_type=AdamSlots,
    slots=(Slot("m"), Slot("v"), Slot("vhat", when=_amsgrad)),
    slot_order=(("m", "v"), ("vhat",)),
    update=current_update,
    prepare=(STEP, Prepared("alpha", step_size), Prepared("epsilon_t", adaptive_epsilon)),
    sparse_update=current_sparse_update,
    statics=(Static("adaptive_epsilon"),),
    config_when_set=("adaptive_epsilon",),  # TF-Keras's config leaves it out
)


# Keras 3: the current family's math without ``adaptive_epsilon``; slots named
# momentum / velocity / velocity_hat; a row-sparse gradient is densified.
KERAS3 = dataclasses.replace(
    CURRENT,
    family="keras3",
    defaults={"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False},
    statics=(Static("adaptive_epsilon", lambda args: False),),
    config_when_set=(),
    slot_names={"m": "momentum", "v": "velocity", "vhat": "velocity_hat"},
    sparse_update=None,
)
