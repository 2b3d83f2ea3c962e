"""Decoupled weight decay as the current Keras family applies it.

``tf.keras.optimizers.Optimizer(weight_decay=wd)`` (and Keras 3) shrinks each
variable before the optimizer step::

    p = p - p * wd * lr

with ``lr`` the optimizer's learning rate at that step.  The ``weight_decay``
argument of the current-family factories does exactly that, inside the step
(so Ftrl, whose update reads the parameter, sees the decayed value).
:func:`decoupled_weight_decay` is the same decay as a transform to chain after
any optimizer; it then adds ``-p * wd * lr`` to the optimizer's update, which
equals Keras's result up to rounding for every optimizer whose update does not
read the parameter (all but Ftrl).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.algorithms.driver import decay_term, learning_rate_at
from jaxopt_keras.core import transform as base
from jaxopt_keras.core.gradients import matched_params
from jaxopt_keras.core.hyperparams import Hyperparams
from jaxopt_keras.core.state import count_dtype, expect_state, safe_add
from jaxopt_keras.schedules.base import is_schedule


class WeightDecayState(NamedTuple):
    """State of :func:`decoupled_weight_decay`: its step count and hyperparameters."""

    iterations: jax.Array
    hyperparams: Hyperparams


@base.picklable
def decoupled_weight_decay(
    weight_decay: float,
    learning_rate: Any = 0.001,
    mask: Any = None,
) -> base.GradientTransformation:
    """Adds Keras's decoupled weight decay, ``-p * weight_decay * lr``, to the updates.

    Chain it after the optimizer, with the optimizer's learning rate (a float,
    schedule or callable of the step).  Both keep a ``learning_rate``
    hyperparameter, so ``set_hyperparams(state, learning_rate=...)`` changes
    both together.

    Args:
      weight_decay: the decay coefficient (non-negative).
      learning_rate: the optimizer's learning rate.
      mask: a tree of booleans shaped like the params (``True``: decay), or a
        callable ``params -> mask``; ``None`` decays everything.

    Returns:
      A transform whose ``update`` needs ``params``.
    """
    if weight_decay is None or weight_decay < 0:
        raise ValueError(f"Expected weight_decay >= 0, received: {weight_decay}")

    def mask_mismatch(why: str) -> str:
        return (
            f"decoupled_weight_decay's mask and the parameters are trees of different structures ({why}). "
            "Pass a tree of booleans shaped like the parameters, or a callable params -> mask."
        )

    def init(params):
        values = {"weight_decay": weight_decay}
        dtypes = {"weight_decay": np.float32}
        if not is_schedule(learning_rate):
            values["learning_rate"], dtypes["learning_rate"] = learning_rate, np.float32
        return WeightDecayState(jnp.zeros([], count_dtype()), Hyperparams.create(values, dtypes))

    def update(updates, state, params=None, **extra_args):
        del extra_args  # optax's extra arguments (value=loss): none is read here
        if params is None:
            raise ValueError("decoupled_weight_decay reads the parameter values: call update(updates, state, params).")
        expect_state("decoupled_weight_decay", state, WeightDecayState)
        lr = learning_rate_at(learning_rate, state.iterations, state.hyperparams, None, "current")
        wd = state.hyperparams["weight_decay"]
        leaves, treedef = base.flatten_updates(updates)
        param_leaves = matched_params(treedef, params, "decoupled_weight_decay")
        m = mask(params) if callable(mask) else mask
        keeps = [True] * len(leaves) if m is None else base.leaves_like(treedef, m, mask_mismatch)

        def leaf(u, p, keep):
            if u is None or not keep:
                return u
            return base.densify(u) - decay_term(jnp.asarray(p), wd, lr)

        new = treedef.unflatten([leaf(u, p, keep) for u, p, keep in zip(leaves, param_leaves, keeps)])
        return new, WeightDecayState(safe_add(state.iterations, 1), state.hyperparams)

    return base.GradientTransformation(init, update)

