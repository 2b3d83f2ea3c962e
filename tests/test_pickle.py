"""Pickling (the issue's failure 9: "Can't pickle local object 'chain.<locals>.init'").

Transformations pickle as the call that made them (``core.transform.Recipe``):
the unpickled one is rebuilt by the same constructor with the same arguments
and computes the same step.  Optimizer objects of every family pickle as a
fresh optimizer from their config (Keras 3's rule, chosen for the TF-Keras
families too): the config travels, the state does not.
"""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_keras as jk
from jaxopt_keras import mixed_precision, registry
from jaxopt_keras import optimizers as O
from jaxopt_keras.keras.factories import make_factory

PARAMS = {"dense": {"kernel": jnp.arange(6.0).reshape(3, 2) / 7, "bias": jnp.full((2,), 0.3)}}
GRADS = {"dense": {"kernel": jnp.cos(jnp.arange(6.0)).reshape(3, 2), "bias": jnp.array([0.5, -0.25])}}


def round_trip(x):
    return pickle.loads(pickle.dumps(x))


def assert_same_steps(a, b, params=PARAMS, steps=3):
    """Two transformations give bit-equal updates and states over a few steps."""
    sa, sb = a.init(params), b.init(params)
    for _ in range(steps):
        ua, sa = a.update(GRADS, sa, params)
        ub, sb = b.update(GRADS, sb, params)
        jax.tree_util.tree_map(np.testing.assert_array_equal, ua, ub)
    jax.tree_util.tree_map(np.testing.assert_array_equal, sa, sb)


FACTORIES = [(f"{family}.{e.function}", make_factory(e, family)) for e in registry.entries() for family in e.specs]


@pytest.mark.parametrize("name,factory", FACTORIES, ids=[n for n, _ in FACTORIES])
def test_every_factory_of_every_family_round_trips(name, factory):
    tx = factory(learning_rate=0.01)
    again = round_trip(tx)
    assert isinstance(again, jk.GradientTransformation)
    assert_same_steps(tx, again)


def test_a_factory_with_every_feature_round_trips():
    schedule = jk.schedules.ExponentialDecay(0.1, 10, 0.9)
    tx = jk.adam(learning_rate=schedule, clipnorm=1.0, weight_decay=0.01, use_ema=True, gradient_accumulation_steps=2)
    assert_same_steps(tx, round_trip(tx), steps=4)
    assert_same_steps(jk.legacy.sgd(0.1, momentum=0.9, nesterov=True, decay=0.01), round_trip(jk.legacy.sgd(0.1, momentum=0.9, nesterov=True, decay=0.01)))


TRANSFORMS = {
    "identity": lambda: jk.identity(),
    "chain": lambda: jk.chain(jk.clip_by_norm(1.0), jk.adam(0.1)),
    "clip_by_value": lambda: jk.clip_by_value(0.5),
    "clip_by_norm": lambda: jk.clip_by_norm(0.5),
    "clip_by_global_norm": lambda: jk.clip_by_global_norm(0.5),
    "aggregate_gradients": lambda: jk.aggregate_gradients("batch"),
    "accumulate_gradients": lambda: jk.accumulate_gradients(jk.sgd(0.1), 2),
    "scale_by_loss_scale_factor": lambda: jk.scale_by_loss_scale_factor(4.0),
    "decoupled_weight_decay": lambda: jk.decoupled_weight_decay(0.01, 0.1),
    "ema": lambda: jk.chain(jk.sgd(0.1), jk.ema(0.9)),
    "loss_scale_optimizer": lambda: mixed_precision.loss_scale_optimizer(jk.sgd(0.1)),
    "keras3.loss_scale_optimizer": lambda: jk.keras3.loss_scale_optimizer(jk.keras3.sgd(0.1)),
    "keras3.multi_optimizer": lambda: jk.keras3.multi_optimizer({"dense/bias": jk.keras3.sgd(0.1)}, jk.keras3.adam(0.1)),
}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_the_transforms_round_trip(name):
    tx = TRANSFORMS[name]()
    again = round_trip(tx)
    if name == "aggregate_gradients":  # steps only inside a mapped axis
        params = jax.tree_util.tree_map(lambda x: x[None], PARAMS)
        grads = jax.tree_util.tree_map(lambda x: x[None], GRADS)
        step = lambda t: jax.vmap(lambda g, p: t.update(g, t.init(p), p)[0], axis_name="batch")(grads, params)  # noqa: E731
        jax.tree_util.tree_map(np.testing.assert_array_equal, step(tx), step(again))
        return
    assert_same_steps(tx, again)


def test_an_optax_chain_state_with_ours_round_trips():
    """optax's own transformations are closures, which pickle cannot store
    (optax's limitation); the state of an optax chain holding ours pickles,
    and an optax chain can be rebuilt around our unpickled transformation."""
    ours = round_trip(jk.adam(0.1, clipnorm=1.0))
    tx = optax.chain(optax.clip(1.0), ours)
    state = tx.init(PARAMS)
    _, state = tx.update(GRADS, state, PARAMS)
    jax.tree_util.tree_map(np.testing.assert_array_equal, state, round_trip(state))
    assert_same_steps(optax.chain(optax.clip(1.0), jk.adam(0.1, clipnorm=1.0)), tx)


def test_an_argument_that_does_not_pickle_says_so():
    tx = jk.decoupled_weight_decay(0.1, 0.1, mask=lambda params: jax.tree_util.tree_map(lambda _: True, params))
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(tx)


CLASSES = [(f"{family}.{e.class_name}", family, e.class_name) for e in registry.entries() for family in e.specs]
MODULES = {"legacy": O.legacy, "current": O, "keras3": O.keras3}


@pytest.mark.parametrize("name,family,class_name", CLASSES, ids=[n for n, _, _ in CLASSES])
def test_every_optimizer_class_pickles_as_its_config(name, family, class_name):
    opt = getattr(MODULES[family], class_name)(learning_rate=0.02)
    var = [jk.Variable(np.ones((3, 2), np.float32), name="dense/kernel")]
    opt.apply_gradients(zip([np.full((3, 2), 0.5, np.float32)], var))
    again = round_trip(opt)
    assert type(again) is type(opt)
    assert again.get_config() == opt.get_config()
    assert not again.built  # a fresh optimizer: the state stays behind


def test_a_pickled_optimizer_steps_as_a_fresh_one():
    schedule = O.schedules.ExponentialDecay(0.1, 10, 0.9)
    opt = round_trip(O.legacy.Adam(learning_rate=schedule, decay=0.01, clipnorm=1.0))
    fresh = O.legacy.Adam(learning_rate=schedule, decay=0.01, clipnorm=1.0)
    a, b = jk.Variable(np.ones(3, np.float32), name="w"), jk.Variable(np.ones(3, np.float32), name="w")
    for k in range(3):
        g = np.full(3, 0.1 * (k + 1), np.float32)
        opt.apply_gradients([(g, a)])
        fresh.apply_gradients([(g, b)])
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_the_wrappers_pickle():
    K3 = O.keras3
    for opt in (
        mixed_precision.LossScaleOptimizer(O.legacy.SGD(0.1), dynamic=False, initial_scale=8.0),
        mixed_precision.LossScaleOptimizer(O.Adam(0.1)),
        K3.LossScaleOptimizer(K3.Adam(0.1), initial_scale=64.0),
        K3.MultiOptimizer(K3.OptimizerMap(K3.Adam(0.1), {"b": K3.SGD(0.2)})),
    ):
        again = round_trip(opt)
        assert type(again) is type(opt)
        assert again.get_config() == opt.get_config()
    wrapped = round_trip(mixed_precision.LossScaleOptimizer(O.Adam(0.1)))
    mixed_precision.LossScaleOptimizer(O.Adam(0.1))  # the original's inner optimizer is not marked twice
    assert wrapped.inner_optimizer._is_wrapped_by_loss_scale_optimizer


def test_a_rebuilt_transformation_without_its_call_says_so():
    """``_replace`` (or ``tree_unflatten``) makes a transformation that does not
    know the call that made it: pickling it is a clear PicklingError."""
    with pytest.raises(pickle.PicklingError, match="does not record the call"):
        pickle.dumps(jk.adam(0.1)._replace())
