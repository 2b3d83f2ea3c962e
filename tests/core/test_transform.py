"""The optax-compatible protocol: composition both ways, pytree states, None gradients."""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_keras as jk
from helpers import all_factories

PARAMS = {"w": jnp.arange(6.0).reshape(2, 3) / 7, "b": jnp.asarray([0.5, -1.0]), "s": jnp.asarray(2.0)}
GRADS = [jax.tree.map(lambda p, k=k: jnp.sin(p * (k + 1)) + 0.1 * k, PARAMS) for k in range(5)]


def run(transform, params=PARAMS, grads=GRADS, apply=jk.apply_updates):
    state = transform.init(params)
    step = jax.jit(lambda p, s, g: transform.update(g, s, p))
    for g in grads:
        u, state = step(params, state, g)
        params = apply(params, u)
    return params, state


def assert_trees_equal(a, b, maxulp=0):
    """Equal structure and values.  Two *different* jitted programs computing the
    same formula may differ in the last bits (XLA fuses them differently and
    contracts different multiply-adds), so those comparisons allow a few ulps."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        if maxulp:
            np.testing.assert_array_max_ulp(np.asarray(x), np.asarray(y), maxulp=maxulp)
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_gradient_transformation_is_an_init_update_namedtuple():
    t = jk.legacy.adam()
    assert t._fields == ("init", "update")
    init, update = t
    assert init is t.init and update is t.update
    assert jk.GradientTransformation._fields == optax.GradientTransformation._fields


@pytest.mark.parametrize("name,factory", all_factories(), ids=[n for n, _ in all_factories()])
def test_every_optimizer_runs_inside_optax_chain(name, factory):
    """Ours inside optax.chain, after optax's clipping, equals the same clipping done by hand."""
    ours = optax.chain(optax.clip(0.3), factory(learning_rate=0.05))
    clipped = [jax.tree.map(lambda g: jnp.clip(g, -0.3, 0.3), g) for g in GRADS]
    p1, _ = run(ours, apply=optax.apply_updates)
    p2, _ = run(factory(learning_rate=0.05), grads=clipped)
    assert_trees_equal(p1, p2, maxulp=8)


def test_optax_transforms_run_inside_our_chain():
    # optax.scale_by_schedule and optax.scale are independent implementations of
    # the "scale by -lr" that our SGD does; the composition must agree with optax's own.
    ours = jk.chain(jk.clip_by_global_norm(1.0), optax.scale(-0.1))
    theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.scale(-0.1))
    p1, _ = run(ours)
    p2, _ = run(theirs)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_our_sgd_equals_optax_sgd():
    """Plain SGD is the same update in every library: an independent check of apply_updates."""
    p1, _ = run(jk.legacy.sgd(learning_rate=0.1))
    p2, _ = run(optax.sgd(0.1), apply=optax.apply_updates)
    assert_trees_equal(p1, p2)


def test_chain_threads_state_and_checks_its_length():
    t = jk.chain(jk.clip_by_value(1.0), jk.legacy.adam())
    state = t.init(PARAMS)
    assert isinstance(state, tuple) and len(state) == 2
    assert isinstance(state[0], jk.EmptyState) and isinstance(state[1], jk.OptimizerState)
    with pytest.raises(ValueError, match="chain expected a state of 2"):
        t.update(GRADS[0], state[1:], PARAMS)


@pytest.mark.parametrize("name,factory", all_factories(), ids=[n for n, _ in all_factories()])
def test_state_is_a_pytree_of_arrays_that_survives_pickle_and_jit(name, factory):
    t = factory(learning_rate=0.05, clipnorm=1.0)
    _, state = run(t)
    leaves = jax.tree.leaves(state)
    assert leaves and all(isinstance(x, jax.Array) for x in leaves)
    restored = pickle.loads(pickle.dumps(jax.device_get(state)))
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    # Continue from the restored state: identical to continuing from the original.
    step = jax.jit(lambda p, s, g: t.update(g, s, p))
    u1, s1 = step(PARAMS, state, GRADS[0])
    u2, s2 = step(PARAMS, jax.tree.map(jnp.asarray, restored), GRADS[0])
    assert_trees_equal((u1, s1), (u2, s2))


@pytest.mark.parametrize("name,factory", all_factories(), ids=[n for n, _ in all_factories()])
def test_none_gradient_leaves_leave_params_and_slots_alone(name, factory):
    t = factory(learning_rate=0.05, global_clipnorm=1.0)
    grads = [dict(g, b=None) for g in GRADS]
    params, state = run(t, grads=grads)
    np.testing.assert_array_equal(np.asarray(params["b"]), np.asarray(PARAMS["b"]))
    fresh = t.init(PARAMS)
    inner, inner_fresh = state[-1], fresh[-1]
    for field in inner.slots._fields:
        slot, slot0 = getattr(inner.slots, field), getattr(inner_fresh.slots, field)
        if slot is not None:
            np.testing.assert_array_equal(np.asarray(slot["b"]), np.asarray(slot0["b"]))
    # The other leaves trained exactly as if "b" were not a parameter at all.
    no_b = {k: v for k, v in PARAMS.items() if k != "b"}
    p2, _ = run(t, params=no_b, grads=[{k: v for k, v in g.items() if k != "b"} for g in GRADS])
    assert_trees_equal({k: v for k, v in params.items() if k != "b"}, p2, maxulp=8)


def test_apply_updates_keeps_dtypes_and_none():
    params = {"a": jnp.ones(3, jnp.bfloat16), "b": jnp.ones(2, jnp.float32)}
    updates = {"a": jnp.full(3, 0.5, jnp.float32), "b": None}
    out = jk.apply_updates(params, updates)
    assert out["a"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(out["a"], np.float32), [1.5, 1.5, 1.5])
    assert out["b"] is params["b"]


def test_ftrl_requires_params():
    for factory in (jk.ftrl, jk.legacy.ftrl):
        t = factory()
        with pytest.raises(ValueError, match="reads the parameter values"):
            t.update(GRADS[0], t.init(PARAMS))


def test_identity_and_empty_chain():
    p, _ = run(jk.chain(jk.identity(), jk.legacy.sgd(learning_rate=0.1)))
    p2, _ = run(jk.legacy.sgd(learning_rate=0.1))
    assert_trees_equal(p, p2)
    u, s = jk.chain().update(GRADS[0], jk.chain().init(PARAMS))
    assert_trees_equal(u, GRADS[0])
    assert s == ()
