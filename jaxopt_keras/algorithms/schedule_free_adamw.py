"""Schedule-Free AdamW (Keras 3 only, 3.14+).

Defazio et al.'s schedule-free method as ``keras.optimizers.ScheduleFreeAdamW``
computes it.  It keeps three sequences: ``z`` (where the gradient steps are
taken), ``x`` (their running average, the point the paper evaluates) and
``y`` (the interpolation between them, where gradients are computed).
Keras 3 stores them as Keras users will find them after porting:

* the **model variable holds y**, between steps and at the end of training
  (there is no swap to ``x`` for evaluation; ``finalize_variable_values`` only
  applies the EMA, as for every optimizer);
* the ``momentum`` slot is ``z``, initialised to a copy of the parameter;
* the ``velocity`` slot is Adam's second moment;
* ``x`` is not stored: each step recovers it from ``y`` and the old ``z`` as
  ``x = (y - (1 - beta_1) * z) / beta_1``.

The new parameter is a computed value, not an increment: the transformation
returns ``y_new - p``, which :func:`~jaxopt_keras.apply_updates` adds back
to ``p``.  When that subtraction is inexact, ``p + (y_new - p)`` can miss
``y_new`` by an ulp (and the next step starts from there); the slots are
computed exactly as Keras 3 computes them.  Weight decay, when set, is the
base class's decoupled decay of ``y`` before the step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_keras.algorithms.parts import Slot, Static
from jaxopt_keras.algorithms.spec import Coefficients, Spec
from jaxopt_keras.core.state import local_step, slot_dtype


class ScheduleFreeSlots(NamedTuple):
    """``z`` (Keras 3: ``momentum``), the sequence the gradient steps move, and
    the second moment ``v`` (``velocity``)."""

    z: Any
    v: Any


def _copy_of_param(param: jax.Array, args) -> jax.Array:
    """``z`` starts at the parameter (Keras 3's ``assign(momentum, ops.copy(var))``):
    a copy of its buffer (eagerly a transfer, no XLA program per shape), or its
    conversion to ``slot_dtype``."""
    dtype = slot_dtype(param, args)
    if dtype != param.dtype:
        return param.astype(dtype)
    if isinstance(param, jax.core.Tracer):
        return jnp.array(param, copy=True)
    return jax.device_put(param, may_alias=False)


def keras3_update(g: jax.Array, p: jax.Array, s: ScheduleFreeSlots, c: Coefficients):
    """One Schedule-Free AdamW step (``keras.optimizers.ScheduleFreeAdamW.update_step``)::

        t = iterations + 1 ;  y = p (the model variable)
        lr = lr * min(t / warmup_steps, 1)            (if warmup_steps > 0)
        v = v + (g**2 - v) * (1 - beta_2)             (1 - beta_2 in the variable's dtype)
        z_new = z - (lr * g) / (sqrt(v / (1 - beta_2**t)) + epsilon)
        x = (y - (1 - beta_1) * z) / beta_1           (x recovered from the old z)
        x_new = (1 - 1/t) * x + (1/t) * z_new
        p = (1 - beta_1) * z_new + beta_1 * x_new     (the new y)

    Returns ``p_new - p``: see the module's note on the last ulp.
    """
    dtype = g.dtype
    lr = c.learning_rate
    t = local_step(c.iterations, 1, dtype)
    # ops.cast(self.beta_1, dtype): constants of the compiled step, as in Keras 3.
    beta_1, beta_2, epsilon = (jnp.asarray(x, dtype) for x in (c.beta_1, c.beta_2, c.epsilon))
    if c.warmup_steps > 0:
        lr = lr * jnp.minimum(t / jnp.asarray(c.warmup_steps, dtype), 1.0)
    bias_correction_2 = 1 - jnp.power(beta_2, t)
    v = s.v + (jnp.square(g) - s.v) * (1 - beta_2)
    denom = jnp.sqrt(v / bias_correction_2) + epsilon
    z = s.z - (lr * g) / denom
    weight = 1.0 / t
    x_old = (p - (1 - beta_1) * s.z) / beta_1
    x_new = (1 - weight) * x_old + weight * z
    y_new = (1 - beta_1) * z + beta_1 * x_new
    return y_new - p, ScheduleFreeSlots(z, v)


KERAS3 = Spec(
    family="keras3",
    singular={"beta_1": 0.0, "beta_2": 1.0},
    defaults={"learning_rate": 0.0025, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "warmup_steps": 0},
    slots_type=ScheduleFreeSlots,
    slots=(Slot("z", init=_copy_of_param), Slot("v")),
    slot_order=(("z", "v"),),
    slot_names={"z": "momentum", "v": "velocity"},
    update=keras3_update,
    # Keras 3 bakes its Python attributes into the compiled step, and XLA folds
    # arithmetic on constants: `(1 - 1/t) * (x / beta_1)` becomes
    # `x * ((1 - 1/t) * (1 / beta_1))`.  Kept in the state, beta_1 would be a
    # runtime scalar, divided as written: so these are constants here too.
    statics=(Static("beta_1"), Static("beta_2"), Static("epsilon"), Static("warmup_steps")),
    needs_params=True,
    non_number_errors={"warmup_steps": TypeError},  # Python arithmetic on it
)
