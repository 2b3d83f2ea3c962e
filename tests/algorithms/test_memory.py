"""A donated step holds no full-size temporary beyond what its formula forces.

Structural, not timed: XLA's buffer assignment for the compiled step
(``memory_analysis().temp_size_in_bytes``) counts every buffer the step
allocates besides its inputs and outputs.  A donated step of an optimizer
with k slots reads params, grads and slots and writes params and slots in
place, so it needs no full-size temporary at all -- except where the new
parameter reads a slot's *old* value while that slot is overwritten in place
(Adadelta's ``accum_var``, Lion's ``m``): the parameter's loop is the
caller's ``apply_updates``, XLA:CPU cannot order the two loops, and it copies
the old slot once.  Ftrl's ``linear`` reads the old accumulator too, but
``linear`` is a stored slot, so the accumulator's loop is ordered after it
(``jaxopt_keras.core.xla.after``) and Ftrl needs no copy.  Anything more is a
regression, e.g. an expensive intermediate stored because two outputs need it
(see ``jaxopt_keras.core.xla.recomputed``).

Known costs of the wrappers, pinned here so that they do not grow unnoticed:
``ema_overwrite_frequency`` stores the inner step's update once (it feeds
both the average and the overwrite select, and the inner step's formula is
not the EMA transform's to recompute); ``gradient_accumulation_steps`` runs
the step in a ``lax.cond`` whose outputs XLA:CPU does not write in place (two
full-size buffers).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import jaxopt_keras as jk

SHAPE = (256, 256)
PARAM_BYTES = 4 * SHAPE[0] * SHAPE[1]
# Adafactor's factored row/column statistics and a few scalars are far below this.
SMALL = PARAM_BYTES // 20
ONE_COPY = {"adadelta", "lion"}
WRAPPER_COPIES = {"ema_overwrite_frequency": 1, "gradient_accumulation_steps": 2}

CASES = [
    ("legacy", "sgd", {}),
    ("legacy", "sgd", dict(momentum=0.9, nesterov=True)),
    ("current", "sgd", dict(momentum=0.9)),
    ("legacy", "adam", dict(amsgrad=True)),
    ("current", "adam", dict(weight_decay=0.01, use_ema=True, clipnorm=1.0)),
    ("legacy", "adamax", {}),
    ("current", "adamax", {}),
    ("legacy", "nadam", {}),
    ("current", "nadam", {}),
    ("legacy", "adagrad", {}),
    ("current", "adagrad", dict(global_clipnorm=1.0)),
    ("legacy", "adadelta", {}),
    ("current", "adadelta", {}),
    ("legacy", "rmsprop", dict(momentum=0.9, centered=True)),
    ("current", "rmsprop", dict(centered=True)),
    ("legacy", "ftrl", dict(l1_regularization_strength=0.01, l2_shrinkage_regularization_strength=0.01)),
    ("current", "ftrl", dict(learning_rate_power=-0.7)),
    ("legacy", "ftrl", {}),
    ("keras3", "ftrl", {}),
    ("current", "adamw", {}),
    ("current", "lion", {}),
    ("current", "adafactor", {}),
    ("current", "adam", dict(use_ema=True, ema_overwrite_frequency=3)),
    ("current", "adam", dict(gradient_accumulation_steps=2)),
]


@pytest.mark.parametrize("family,name,kwargs", CASES, ids=[f"{f}-{n}-{k}" for f, n, k in CASES])
def test_donated_step_allocates_no_extra_full_size_buffer(family, name, kwargs):
    opt = getattr({"legacy": jk.legacy, "current": jk, "keras3": jk.keras3}[family], name)(**kwargs)
    params = {"w": jnp.ones(SHAPE, jnp.float32)}
    grads = {"w": jnp.full(SHAPE, 0.01, jnp.float32)}
    state = opt.init(params)

    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return jk.apply_updates(params, updates), state

    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, grads).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    copies = (name in ONE_COPY) + sum(n for key, n in WRAPPER_COPIES.items() if kwargs.get(key))
    allowed = copies * PARAM_BYTES + SMALL
    assert temp <= allowed, f"{temp / PARAM_BYTES:.2f} x the parameter's bytes in temporaries"
