"""Hyperparameters live in the state: readable, settable, and never a recompilation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from helpers import all_factories
from jaxopt_keras import registry
from jaxopt_keras.core.hyperparams import FRACTIONS, NONNEGATIVE

PARAMS = [jnp.linspace(-1.0, 1.0, 5), jnp.ones((2, 2))]
GRADS = [jnp.cos(jnp.arange(5.0)), jnp.full((2, 2), 0.25)]


def test_values_are_stored_with_keras_rounding():
    legacy = jk.get_hyperparams(jk.legacy.adam(beta_1=0.9, epsilon=1e-7).init(PARAMS))
    # OptimizerV2 keeps beta_1 in a float32 variable, epsilon as a Python float.
    assert legacy["beta_1"].dtype == jnp.float32 and float(legacy["beta_1"]) == float(np.float32(0.9))
    assert legacy["learning_rate"].dtype == jnp.float32
    with jax.enable_x64(True):
        current = jk.adam(beta_1=0.9, epsilon=1e-7).init([jnp.ones(2)])
        hp = current.hyperparams
        assert hp["epsilon"].dtype == jnp.float64 and float(hp["epsilon"]) == 1e-7
        # `(1 - self.beta_1)` is Python arithmetic in Keras: double precision.
        assert float(hp["one_minus_beta_1"]) == 1 - 0.9
        assert "one_minus_beta_1" not in jk.get_hyperparams(current)


@pytest.mark.parametrize("name,factory", all_factories(), ids=[n for n, _ in all_factories()])
def test_changing_hyperparameters_never_recompiles(name, factory):
    t = factory(learning_rate=0.1)
    traces = []

    @jax.jit
    def step(params, state, grads):
        traces.append(1)
        u, state = t.update(grads, state, params)
        return jk.apply_updates(params, u), state

    state = t.init(PARAMS)
    params, state = step(PARAMS, state, GRADS)
    names = list(jk.get_hyperparams(state))
    for value in (0.05, 0.01):
        state = jk.set_hyperparams(state, **{n: value for n in names if n in ("learning_rate", "epsilon")})
        params, state = step(params, state, GRADS)
    assert len(traces) == 1, f"{name} retraced after set_hyperparams"
    assert step._cache_size() == 1


def test_new_learning_rate_takes_effect_at_the_next_step():
    t = jk.legacy.sgd(learning_rate=0.1)
    state = t.init(PARAMS)
    step = jax.jit(lambda s, g: t.update(g, s, PARAMS))
    u, state = step(state, GRADS)
    np.testing.assert_array_equal(np.asarray(u[0]), -(np.asarray(GRADS[0]) * np.float32(0.1)))
    state = jk.set_hyperparams(state, learning_rate=0.5)
    u, state = step(state, GRADS)
    np.testing.assert_array_equal(np.asarray(u[0]), -(np.asarray(GRADS[0]) * np.float32(0.5)))


@pytest.mark.parametrize("factory,kwargs", [(jk.legacy.sgd, dict(learning_rate=0.1)), (jk.legacy.adam, dict(decay=0.01)), (jk.legacy.nadam, {})])
def test_legacy_decay_in_the_state_is_not_read_by_the_step(factory, kwargs):
    """OptimizerV2 keeps a ``decay`` hyper variable but its step reads the
    constructor's ``_initial_decay``: setting the state's ``decay`` (as a
    restored checkpoint or ``set_hyperparams`` does) leaves every step as it
    was; constructing with another ``decay`` does change it."""
    t = factory(**kwargs)
    _, state = t.update(GRADS, t.init(PARAMS), PARAMS)
    changed = jk.set_hyperparams(state, decay=0.5)
    assert float(jk.get_hyperparams(changed)["decay"]) == 0.5

    def two_steps(transform, s):
        _, s = transform.update(GRADS, s, PARAMS)
        return transform.update(GRADS, s, PARAMS)[0]

    kept = two_steps(t, state)
    for a, b in zip(two_steps(t, changed), kept):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = factory(**{**kwargs, "schedule_decay" if factory is jk.legacy.nadam else "decay": 0.5})
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(two_steps(other, state), kept))


def test_setting_a_hyperparameter_equals_constructing_with_it():
    """Mid-training change == an optimizer built with the new value from that state on.

    Derived values (1 - beta_1 in double) follow their source.
    """
    with jax.enable_x64(True):
        params = [p.astype(jnp.float64) for p in PARAMS]
        grads = [g.astype(jnp.float64) for g in GRADS]
        a, b = jk.adam(learning_rate=0.1, beta_1=0.9), jk.adam(learning_rate=0.1, beta_1=0.7)
        state = a.init(params)
        _, state = a.update(grads, state, params)
        changed = jk.set_hyperparams(state, beta_1=0.7)
        fresh = b.init(params)
        assert float(changed.hyperparams["one_minus_beta_1"]) == float(fresh.hyperparams["one_minus_beta_1"])
        transplanted = state._replace(hyperparams=fresh.hyperparams)
        u1, _ = a.update(grads, changed, params)
        u2, _ = b.update(grads, transplanted, params)
    for x, y in zip(u1, u2):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_set_inside_a_chain_and_inside_jit():
    t = jk.chain(jk.clip_by_norm(1.0), jk.legacy.rmsprop(learning_rate=0.1, momentum=0.5))
    state = t.init(PARAMS)

    @jax.jit
    def with_lr(state, lr):
        return jk.set_hyperparams(state, learning_rate=lr, momentum=lr / 2)

    state = with_lr(state, jnp.float32(0.25))
    hp = jk.get_hyperparams(state)
    assert float(hp["learning_rate"]) == 0.25 and float(hp["momentum"]) == 0.125
    assert hp["learning_rate"].dtype == jnp.float32


def test_errors():
    state = jk.legacy.adam().init(PARAMS)
    with pytest.raises(ValueError, match="No transform in this state has the hyperparameter"):
        jk.set_hyperparams(state, betta_1=0.5)
    scheduled = jk.adam(learning_rate=jk.schedules.ExponentialDecay(0.1, 10, 0.5)).init(PARAMS)
    assert "learning_rate" not in jk.get_hyperparams(scheduled)
    with pytest.raises(ValueError, match="schedule"):
        jk.set_hyperparams(scheduled, learning_rate=0.1)
    with pytest.raises(ValueError, match="scalars"):
        jk.set_hyperparams(state, learning_rate=np.ones(3))


@pytest.mark.parametrize(
    "value,error",
    [(None, TypeError), ("0.1", TypeError), ("abc", TypeError), (object(), TypeError), (True, ValueError),
     (float("nan"), ValueError), (float("inf"), ValueError), ([0.1, 0.2], ValueError)],
)
def test_set_hyperparams_refuses_non_numbers_and_changes_nothing(value, error):
    """``np.asarray(None, float32)`` is NaN and ``float("0.1")`` parses: both used to land silently."""
    tx = jk.adam(0.1)
    state = tx.init([jnp.ones(2)])
    before = jax.tree_util.tree_map(np.asarray, state)
    with pytest.raises(error, match="beta_1"):
        jk.set_hyperparams(state, learning_rate=0.5, beta_1=value)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a, b: np.array_equal(a, b), state, before))


FACTORIES = {"legacy": jk.legacy, "current": jk, "keras3": jk.keras3}
# Options that put more hyperparameters in the state (the EMA's momentum, the weight decay).
OPTIONS = {"legacy": {}, "current": {"use_ema": True, "weight_decay": 0.01}, "keras3": {"use_ema": True, "weight_decay": 0.01}}


@pytest.mark.parametrize(
    "family,function",
    [(f, e.function) for f in FACTORIES for e in registry.entries(f)],
    ids=[f"{f}.{e.function}" for f in FACTORIES for e in registry.entries(f)],
)
def test_set_hyperparams_refuses_what_the_constructor_refuses_out_of_range(family, function):
    """A fraction outside [0, 1] or a negative amount: a ValueError, as from the constructor, and nothing changed.

    The range's edges (0 and 1 for a fraction, 0 for an amount) are accepted by both.
    """
    factory = getattr(FACTORIES[family], function)
    state = factory(**OPTIONS[family]).init(PARAMS)
    before = jax.tree_util.tree_map(np.asarray, state)
    held = [n for n in jk.get_hyperparams(state) if n in FRACTIONS or n in NONNEGATIVE]
    for name in held:
        bad = (1.5, -0.5) if name in FRACTIONS else (-1e-7,)
        for value in bad:
            with pytest.raises(ValueError) as constructed:
                factory(**{**OPTIONS[family], name: value})
            with pytest.raises(ValueError) as assigned:
                jk.set_hyperparams(state, **{name: value})
            # The constructor may speak in its Keras's words (SGD: "`momentum` must be between [0, 1].").
            assert name in str(constructed.value)
            assert name in str(assigned.value) and str(value) in str(assigned.value)
            assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, state, before))
        for value in (0.0, 1.0) if name in FRACTIONS else (0.0,):
            changed = jk.set_hyperparams(state, **{name: value})
            assert float(jk.get_hyperparams(changed)[name]) == value
    assert held and (family == "legacy" or "ema_momentum" in held and "weight_decay" in held), held


def test_a_traced_value_is_not_range_checked():
    """Inside ``jit`` the value is unknown; ``optax.inject_hyperparams`` passes its values so."""
    state = jk.adam(0.1).init(PARAMS)
    out = jax.jit(lambda s, b: jk.set_hyperparams(s, beta_1=b))(state, jnp.float32(0.5))
    assert float(jk.get_hyperparams(out)["beta_1"]) == 0.5
