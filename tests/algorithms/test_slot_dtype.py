"""Mixed precision: opt-in float32 slots for low-precision parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from helpers import all_factories
from jaxopt_keras import registry
from jaxopt_keras.core.state import find_state
from jaxopt_keras.keras.factories import make_factory


@pytest.mark.parametrize("name,factory", all_factories(), ids=[n for n, _ in all_factories()])
def test_float32_slots_for_bfloat16_params(name, factory):
    params = {"w": jnp.linspace(-1, 1, 12, dtype=jnp.bfloat16).reshape(3, 4), "b": jnp.ones(4, jnp.bfloat16)}
    grads = jax.tree.map(lambda p: (jnp.cos(p.astype(jnp.float32) * 3) * 0.3).astype(jnp.bfloat16), params)
    t = factory(learning_rate=0.05, slot_dtype=jnp.float32)
    ref = factory(learning_rate=0.05)  # the same optimizer, all in float32
    state = t.init(params)
    p32 = jax.tree.map(lambda x: x.astype(jnp.float32), params)
    rstate = ref.init(p32)
    for _ in range(5):
        u, state = jax.jit(t.update)(grads, state, params)
        params = jk.apply_updates(params, u)
        ru, rstate = ref.update(jax.tree.map(lambda g: g.astype(jnp.float32), grads), rstate, p32)
        p32 = jk.apply_updates(p32, ru)
    inner = find_state(state, jk.OptimizerState)
    for field in inner.slots._fields:
        slot = getattr(inner.slots, field)
        if slot is not None:
            assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(slot))
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(params))
    # Each step is the float32 step, rounded to bfloat16 on the parameter only.
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(p32)):
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b), atol=0.05)


def test_default_keeps_keras_slot_dtype():
    t = jk.legacy.adam()
    state = t.init([jnp.ones(3, jnp.bfloat16)])
    assert state.slots.m[0].dtype == jnp.bfloat16


def test_slot_dtype_round_trips_in_the_keras_layer():
    opt = jk.optimizers.Adam(slot_dtype="float32")
    assert opt.get_config()["slot_dtype"] == "float32"
    assert jk.optimizers.Adam.from_config(opt.get_config()).get_config() == opt.get_config()
    assert "slot_dtype" not in jk.optimizers.Adam().get_config()
    v = jk.Variable(jnp.ones(3, jnp.float16))
    opt.apply_gradients([(jnp.full(3, 0.5, jnp.float16), v)])
    assert all(w.dtype == jnp.float32 for w in opt.weights[1:])
    assert v.dtype == jnp.float16


EVERY = [(f"{fam}.{e.function}", e, fam) for e in registry.entries() for fam in e.specs]


@pytest.mark.parametrize("name,entry,family", EVERY, ids=[n for n, _, _ in EVERY])
def test_slots_start_where_float32_parameters_would_start_them(name, entry, family):
    """With ``slot_dtype=float32`` a slot's initial value is made in float32:
    Adagrad's and Ftrl's 0.1 is float32's 0.1, not bfloat16's 0.10009765625
    widened.  Every slot equals, bit for bit, the one the same optimizer
    makes for float32 parameters holding the same values."""
    params = {"w": jnp.linspace(-1, 1, 12, dtype=jnp.bfloat16).reshape(3, 4), "b": jnp.ones(4, jnp.bfloat16)}
    p32 = jax.tree.map(lambda x: x.astype(jnp.float32), params)
    ours = make_factory(entry, family)(slot_dtype="float32").init(params)
    want = make_factory(entry, family)().init(p32)
    got_leaves = jax.tree.leaves(find_state(ours, jk.OptimizerState).slots)
    want_leaves = jax.tree.leaves(find_state(want, jk.OptimizerState).slots)
    assert len(got_leaves) == len(want_leaves)
    for a, b in zip(got_leaves, want_leaves):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
