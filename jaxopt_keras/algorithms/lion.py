"""Lion ("EvoLved Sign Momentum"), current family only."""

from __future__ import annotations

import dataclasses

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_keras.algorithms.parts import Slot, complement
from jaxopt_keras.algorithms.spec import Coefficients, Spec
from jaxopt_keras.core.sparse import IndexedSlices, scatter_add


class LionSlots(NamedTuple):
    """Lion's momentum ``m``."""

    m: Any


def current_update(g: jax.Array, p: jax.Array | None, s: LionSlots, c: Coefficients):
    """One Lion step (``tf.keras.optimizers.Lion.update_step``)::

        p = p - lr * sign(m * beta_1 + g * (1 - beta_1))
        m = m * beta_2 + g * (1 - beta_2)

    ``1 - beta`` is prepared once per step and dtype (:data:`CURRENT`).
    """
    delta = -(c.learning_rate * jnp.sign(s.m * c.beta_1 + g * c.one_minus_beta_1))
    m = s.m * c.beta_2 + g * c.one_minus_beta_2
    return delta, LionSlots(m)


def current_sparse_update(g: IndexedSlices, p, s: LionSlots, c: Coefficients):
    """Lion with a row-sparse gradient::

        m = m * beta_1 ; m[i] += g_i * (1 - beta_1) ;  p = p - lr * sign(m)
        m = m * beta_2 / beta_1 ; m[i] += g_i * (1 - beta_2 / beta_1)
    """
    idx, gv = g.indices, g.values
    m = scatter_add(s.m * c.beta_1, idx, gv * (1.0 - c.beta_1))
    delta = -(c.learning_rate * jnp.sign(m))
    m = scatter_add(m * c.beta_2 / c.beta_1, idx, gv * (1.0 - c.beta_2 / c.beta_1))
    return delta, LionSlots(m)

def _check(args: dict) -> dict:
    b = args["beta_1"]
    if b <= 0 or b > 1:
        raise ValueError(f"`beta_1`={b} must be between ]0, 1]. Otherwise, the optimizer degenerates to SignSGD.")
    return args


CURRENT = Spec(
    family="current",
    defaults={"learning_rate": 0.0001, "beta_1": 0.9, "beta_2": 0.99},
    float32_hyperparams=("beta_1", "beta_2"),  # tf.cast(self.beta_1, dtype)
    exact_hyperparams=(),
    slots_type=LionSlots,
    slots=(Slot("m"),),
    slot_order=(("m",),),
    update=current_update,
    prepare=(complement("beta_1"), complement("beta_2")),
    sparse_update=current_sparse_update,
    check_args=_check,
    non_number_errors={"beta_1": TypeError},  # `beta_1 <= 0`
)


def _check_keras3(args: dict) -> dict:
    b = args["beta_1"]
    if b <= 0 or b > 1:
        raise ValueError(
            "Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer degenerates to "
            f"SignSGD. Received: beta_1={b}."
        )
    return args


# Keras 3: the same math; the default learning rate is 1e-3 (TF-Keras: 1e-4).
KERAS3 = dataclasses.replace(
    CURRENT,
    family="keras3",
    defaults={"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.99},
    check_args=_check_keras3,
    slot_names={"m": "momentum"},
    sparse_update=None,
)
