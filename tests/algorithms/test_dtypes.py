"""Slots and updates take their parameter's dtype, in every optimizer and in mixed-dtype trees.

The step counter's dtype is ``tests/core/test_state.py``; float32 slots for
low-precision parameters (``slot_dtype``) are ``test_slot_dtype.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import jaxopt_keras as jk
from helpers import OPTION_SETS, all_factories

DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16, jnp.float64]


def _cases():
    for name, factory in all_factories():
        algo = name.split(".")[1]
        for options in [{}] + OPTION_SETS.get(algo, []):
            for dtype in DTYPES:
                yield pytest.param(factory, options, dtype, id=f"{name}-{options}-{jnp.dtype(dtype).name}")


@pytest.mark.parametrize("factory,options,dtype", list(_cases()))
def test_slots_and_updates_keep_the_param_dtype(factory, options, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        params = {"a": jnp.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3), "b": jnp.asarray(0.5, dtype)}
        grads = jax.tree.map(lambda p: (jnp.cos(p.astype(jnp.float32) * 3) * 0.5).astype(dtype), params)
        t = factory(learning_rate=0.01, **options)
        state = t.init(params)
        step = jax.jit(lambda p, s: t.update(grads, s, p))
        for _ in range(3):
            u, state = step(params, state)
            params = jk.apply_updates(params, u)
        for leaf in jax.tree.leaves(u) + jax.tree.leaves(params):
            assert leaf.dtype == dtype
        for field in state.slots._fields:
            slot = getattr(state.slots, field)
            if slot is not None:
                for leaf in jax.tree.leaves(slot):
                    assert leaf.dtype == dtype, field
        # Values in low precision are checked against TF-Keras in
        # tests/oracle/test_low_precision.py (bfloat16 rounds beta_2=0.999 to 1,
        # so Keras's own Adam stands still and Nadam turns NaN there).


def test_mixed_dtype_tree():
    params = {"f32": jnp.ones(3, jnp.float32), "bf16": jnp.ones(3, jnp.bfloat16), "f16": jnp.ones(2, jnp.float16)}
    grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.1, p.dtype), params)
    for t in (jk.legacy.nadam(), jk.nadam(), jk.legacy.ftrl(), jk.rmsprop(centered=True)):
        state = t.init(params)
        u, state = jax.jit(t.update)(grads, state, params)
        for k in params:
            assert u[k].dtype == params[k].dtype
