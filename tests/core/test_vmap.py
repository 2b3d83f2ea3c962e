"""``jax.vmap`` over optimizer states: ensembles and hyperparameter sweeps.

The hyperparameters live in the state, so a batch of states with different
learning rates is one program (``jax.vmap(tx.update)``), and a batch of
models (an ensemble: params, gradients and states with a leading axis) too.
Each member must step exactly as it would alone: the same XLA operations
on the same values, so bit for bit.  The state checks of ``update`` see
each member's shapes under ``vmap`` (a step count is a scalar there).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import registry
from jaxopt_keras.keras.factories import make_factory

MEMBERS = 3
OPTIONS = {"sgd": {"momentum": 0.9}}  # SGD has a slot only with momentum


def _factories():
    for e in registry.entries():
        for family in e.specs:
            yield pytest.param(make_factory(e, family), OPTIONS.get(e.function, {}), id=f"{family}.{e.function}")


def _ensemble():
    """Three models' params and gradients, stacked on a leading axis."""
    rng = np.random.default_rng(0)
    shapes = {"kernel": (4, 3), "bias": (3,), "scale": ()}
    params = {k: jnp.asarray(rng.standard_normal((MEMBERS,) + s), jnp.float32) for k, s in shapes.items()}
    grads = {k: jnp.asarray(rng.standard_normal((MEMBERS,) + s), jnp.float32) for k, s in shapes.items()}
    return params, grads


def _member(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def _two_steps(tx):
    def run(params, grads):
        state = tx.init(params)
        for k in range(2):
            updates, state = tx.update(jax.tree.map(lambda g: g * (k + 1), grads), state, params)
            params = jk.apply_updates(params, updates)
        return params, state

    return run


@pytest.mark.parametrize("factory,options", list(_factories()))
def test_an_ensemble_steps_each_member_as_it_would_alone(factory, options):
    _check_members(factory(learning_rate=0.01, **options), *_ensemble())


WRAPPED = {
    "ema+global_clipnorm": lambda: jk.adam(0.01, use_ema=True, ema_overwrite_frequency=2, global_clipnorm=1.0),
    "accumulation+clipnorm": lambda: jk.keras3.adam(0.01, gradient_accumulation_steps=2, clipnorm=0.5),
    "decay+clipvalue": lambda: jk.legacy.rmsprop(0.01, decay=0.1, clipvalue=0.3),
    "keras3.loss_scale": lambda: jk.keras3.loss_scale_optimizer(jk.keras3.sgd(0.01, momentum=0.9)),
    "multi_optimizer": lambda: jk.keras3.multi_optimizer({"bias": jk.keras3.sgd(0.1)}, jk.keras3.adam(0.01)),
}


@pytest.mark.parametrize("make", list(WRAPPED.values()), ids=list(WRAPPED))
def test_an_ensemble_through_the_keras_pipeline_steps_each_member_as_alone(make):
    params, grads = _ensemble()
    grads["bias"] = grads["bias"].at[1].set(jnp.inf)  # one member overflows: loss scaling skips its step
    _check_members(make(), params, grads)


def _check_members(tx, params, grads):
    """Two steps of the whole ensemble under ``vmap`` against each member's alone."""
    together, states = jax.jit(jax.vmap(_two_steps(tx)))(params, grads)
    alone = jax.jit(_two_steps(tx))
    for i in range(MEMBERS):
        p, s = alone(_member(params, i), _member(grads, i))
        jax.tree.map(_same, p, _member(together, i))
        jax.tree.map(_same, s, _member(states, i))


def _same(alone, member):
    """Bit for bit, but a float of shape (): alone it is a scalar computation,
    in the ensemble a vector lane, and XLA:CPU contracts a multiply-add into
    an FMA in one and not the other (current Adadelta's scalar parameter
    moved 1 ulp in two steps; with ``--xla_cpu_max_isa=AVX``, no FMA, it is
    bit for bit too)."""
    alone, member = np.asarray(alone), np.asarray(member)
    if alone.ndim or not np.issubdtype(alone.dtype, np.floating):
        np.testing.assert_array_equal(alone, member)  # NaN equals NaN here
    else:
        np.testing.assert_array_max_ulp(alone, member, maxulp=1)


@pytest.mark.parametrize("make", [jk.adam, jk.legacy.rmsprop, jk.keras3.lion], ids=["adam", "legacy.rmsprop", "keras3.lion"])
def test_a_learning_rate_sweep_is_one_vmapped_program(make):
    tx = make(learning_rate=1e-3)
    params, grads = _member(_ensemble()[0], 0), _member(_ensemble()[1], 0)
    rates = jnp.array([1e-3, 1e-2, 1e-1])
    states = jax.vmap(lambda lr: jk.set_hyperparams(tx.init(params), learning_rate=lr))(rates)
    updates, states = jax.jit(jax.vmap(tx.update, in_axes=(None, 0, None)))(grads, states, params)
    assert jk.get_hyperparams(states)["learning_rate"].shape == (3,)
    for i, lr in enumerate([1e-3, 1e-2, 1e-1]):
        u, _ = jax.jit(tx.update)(grads, jk.set_hyperparams(tx.init(params), learning_rate=lr), params)
        jax.tree.map(np.testing.assert_array_equal, u, _member(updates, i))
    # The rates did differ: the updates are not all the same.
    assert not np.array_equal(updates["kernel"][0], updates["kernel"][2])
