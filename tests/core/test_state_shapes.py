"""A state that does not fit the parameters is refused, not broadcast
(``core/state.check_slot_shapes``; its scalars by ``check_scalars``), and a
state of another structure is named in the error (``expect_state``,
``slot_tree_leaves``).

Without the check, a slot of shape ``(1, n)`` for a parameter of shape ``(n,)``
broadcasts: the update, and then the parameter, silently become ``(1, n)``; a
scalar slot makes a full one of its value.  Such a state comes from another
model, or from a checkpoint restored without a target (a flat buffer saved
before the padding).  The check reads static shapes, so it raises while
``jit`` traces.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import registry
from jaxopt_keras.algorithms.driver import OptimizerState
from jaxopt_keras.core.state import find_state, replace_state
from jaxopt_keras.keras.factories import make_factory


# SGD has a slot only with momentum.
OPTIONS = {"sgd": {"momentum": 0.9}}


def _factories():
    for e in registry.entries():
        for family in e.specs:
            yield pytest.param(make_factory(e, family), OPTIONS.get(e.function, {}), id=f"{family}.{e.function}")


def _problem():
    params = {"matrix": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "vector": jnp.linspace(0.5, 1.0, 5)}
    grads = jax.tree.map(lambda p: jnp.cos(3 * p), params)
    return params, grads


def _with_slot(state, field, name, value):
    """``state`` with the optimizer's slot ``field`` of parameter ``name`` replaced by ``value``."""

    def edit(s):
        tree = dict(getattr(s.slots, field))
        tree[name] = value
        return s._replace(slots=s.slots._replace(**{field: tree}))

    return replace_state(state, OptimizerState, edit)


def _slots(state, name):
    """``(field, leaf)`` of each slot parameter ``name`` has."""
    slots = find_state(state, OptimizerState).slots
    return [(f, getattr(slots, f)[name]) for f in slots._fields if getattr(slots, f) is not None and getattr(slots, f)[name] is not None]


@pytest.mark.parametrize("factory,options", list(_factories()))
def test_a_slot_of_another_shape_is_refused_while_tracing(factory, options):
    params, grads = _problem()
    t = factory(learning_rate=0.01, **options)
    state = t.init(params)
    step = jax.jit(t.update)
    step(grads, state, params)  # the state as built fits
    cases = [(f, "vector", leaf[None]) for f, leaf in _slots(state, "vector")]  # broadcasts against (5,)
    cases += [(f, "matrix", jnp.zeros((), leaf.dtype)) for f, leaf in _slots(state, "matrix")]
    assert cases
    for field, name, value in cases:
        bad = _with_slot(state, field, name, value)
        with pytest.raises(ValueError, match=rf"for the parameter '{name}' \(shape \(\d+(, \d+)?,?\)\) has shape {re.escape(str(value.shape))}"):
            step(grads, bad, params)


def test_adafactors_factored_statistics_are_checked_by_their_own_shape():
    params, grads = _problem()
    for t in (jk.adafactor(), jk.keras3.adafactor()):
        state = t.init(params)
        shapes = {f: np.shape(leaf) for f, leaf in _slots(state, "matrix")}
        assert sorted(shapes.values()) == [(3,), (3, 4), (4,)]  # r reduces the last axis, c the one before
        t.update(grads, state, params)
        (r_field,) = [f for f, s in shapes.items() if s == (3,)]
        with pytest.raises(ValueError, match=r"has shape \(4,\), where \(3,\) is needed"):
            t.update(grads, _with_slot(state, r_field, "matrix", jnp.zeros(4)), params)


@pytest.mark.parametrize("make", [lambda: jk.adam(use_ema=True), lambda: jk.keras3.adam(use_ema=True)], ids=["current", "keras3"])
def test_an_ema_average_of_another_shape_is_refused(make):
    params, grads = _problem()
    t = make()
    state = t.init(params)
    leaves, treedef = jax.tree_util.tree_flatten(state)
    # The moving average of "vector" is the only leaf of shape (5,) outside the optimizer's slots.
    slot_ids = {id(x) for x in jax.tree.leaves(find_state(state, OptimizerState).slots)}
    i = next(i for i, x in enumerate(leaves) if np.shape(x) == (5,) and id(x) not in slot_ids)
    leaves[i] = leaves[i][None]
    with pytest.raises(ValueError, match=r"The state of EMA .* 'average' for the parameter 'vector'"):
        t.update(grads, treedef.unflatten(leaves), params)


def test_a_gradient_accumulator_of_another_shape_is_refused():
    params, grads = _problem()
    t = jk.adam(gradient_accumulation_steps=2)
    state = t.init(params)
    slot_ids = {id(x) for x in jax.tree.leaves(find_state(state, OptimizerState).slots)}
    leaves, treedef = jax.tree_util.tree_flatten(state)
    i = next(i for i, x in enumerate(leaves) if np.shape(x) == (3, 4) and id(x) not in slot_ids)
    leaves[i] = jnp.zeros((1, 3, 4))
    with pytest.raises(ValueError, match=r"gradient accumulation .* 'gradient_accumulator' for the parameter 'matrix'"):
        t.update(grads, treedef.unflatten(leaves), params)


def test_a_flat_buffer_saved_before_the_padding_is_refused_naming_the_way_to_restore_it():
    # The restore itself (orbax, then io.state_from_tree appending the padding)
    # is tests/test_flax_optax_orbax.py.
    flat, layout = jk.flat.ravel({"w": jnp.ones((100, 60)), "b": jnp.ones(7)})
    (n,), (used,) = layout.sizes, layout.used
    assert used < n  # the layout pads
    t = jk.adam(1e-3)
    state = t.init(flat)
    unpadded = jax.tree.map(lambda x: x[:used] if np.shape(x) == (n,) else x, state)
    with pytest.raises(ValueError, match=rf"has shape \({used},\), where \({n},\) is needed.*state_from_tree"):
        jax.jit(t.update)(flat, unpadded, flat)


# A state of another structure: the type, or the tree, named in the error
# instead of an AttributeError or JAX's tree-structure error from inside the step.


def test_another_optimizers_state_is_refused_naming_both():
    params, grads = _problem()
    with pytest.raises(ValueError, match=r"RMSprop's update \(OptimizerState of AdamSlots\) is not the OptimizerState of RMSpropSlots"):
        jk.rmsprop().update(grads, jk.adam().init(params), params)


def test_a_state_built_with_other_arguments_is_refused():
    params, grads = _problem()
    with pytest.raises(ValueError, match=r"Adam's update \(tuple\) is not the OptimizerState of AdamSlots .*use_ema"):
        jk.adam().update(grads, jk.adam(use_ema=True).init(params), params)
    with pytest.raises(ValueError, match=r"chain expected a state of 2 inner states .*received OptimizerState of length 4"):
        jk.adam(use_ema=True).update(grads, jk.adam().init(params), params)
    with pytest.raises(ValueError, match=r"gradient accumulation's update \(tuple\) is not the AccumulationState"):
        jk.adam(gradient_accumulation_steps=2).update(grads, jk.adam(use_ema=True).init(params), params)


def test_a_state_of_plain_dicts_points_to_state_from_tree():
    params, grads = _problem()
    t = jk.adam()
    raw = jax.tree.map(np.asarray, t.init(params))._asdict()  # what a restore without a target gives
    with pytest.raises(ValueError, match=r"\(dict\) is not the OptimizerState .*jaxopt_keras.io.state_from_tree"):
        t.update(grads, raw, params)
    t.update(grads, jk.io.state_from_tree(t.init(params), raw), params)  # the way back


@pytest.mark.parametrize(
    "make,slot",
    [(jk.adam, "m"), (jk.ema, "average"), (lambda: jk.accumulate_gradients(jk.sgd(0.1), 2), "gradient_accumulator")],
    ids=["optimizer", "ema", "accumulation"],
)
def test_a_state_for_other_parameters_is_refused_naming_the_slot(make, slot):
    params, grads = _problem()
    t = make()
    other = [jnp.zeros(1000) for _ in range(5)]  # a list for the dict; numpy prints each array in full
    with pytest.raises(ValueError, match=rf"does not fit the parameters: its '{slot}' is not a tree of the parameters' structure") as e:
        t.update(grads, t.init(other), params)
    assert len(str(e.value)) < 700  # JAX's message, which prints the arrays, is cut


# A state with one copy per device (jax.pmap's outputs) stepped outside pmap:
# its scalars would broadcast.  Legacy SGD without momentum has no slot to
# catch it: a scalar parameter's update, then the parameter, became shape (4,),
# and a parameter of shape (3,) failed inside the step with JAX's
# "incompatible shapes for broadcasting".


def _replicated(state, n=4):
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + np.shape(x)), state)


@pytest.mark.parametrize(
    "make,owner",
    [
        (lambda: jk.legacy.sgd(0.1), "SGD"),
        (lambda: jk.legacy.sgd(0.1, decay=0.01), "SGD"),
        (lambda: jk.adam(1e-3), "Adam"),
        (lambda: jk.keras3.nadam(1e-3), "Nadam"),
        (lambda: jk.ema(0.9), "EMA"),
        (lambda: jk.chain(jk.legacy.sgd(0.1), jk.decoupled_weight_decay(0.01, 0.1)), "SGD"),
        (lambda: jk.decoupled_weight_decay(0.01, 0.1), "decoupled_weight_decay"),
        (lambda: jk.mixed_precision.loss_scale_optimizer(jk.legacy.sgd(0.1)), "LossScaleOptimizer"),
        (lambda: jk.keras3.loss_scale_optimizer(jk.keras3.sgd(0.1)), "LossScaleOptimizer"),
    ],
    ids=["legacy-sgd", "legacy-sgd-decay", "adam", "keras3-nadam", "ema", "chain", "weight-decay", "loss-scale", "keras3-loss-scale"],
)
def test_a_state_with_one_copy_per_device_is_refused(make, owner):
    params, grads = _problem()
    t = make()
    state = t.init(params)
    with pytest.raises(ValueError, match=rf"The state of {owner} is not the one its init returns: its '\w+' has shape \(4,\), "
                       r"where a scalar is needed.*x\[0\]"):
        jax.jit(t.update)(grads, _replicated(state), params)
    # One copy of it steps as the state did.
    ours, _ = jax.jit(t.update)(grads, jax.tree.map(lambda x: x[0], _replicated(state)), params)
    expected, _ = jax.jit(t.update)(grads, state, params)
    jax.tree.map(np.testing.assert_array_equal, ours, expected)


def test_each_scalar_of_the_state_is_checked():
    params, grads = _problem()
    t = jk.legacy.adam(1e-3)
    state = t.init(params)
    wide = jnp.zeros(4, state.iterations.dtype)
    with pytest.raises(ValueError, match=r"The state of Adam .* its 'iterations' has shape \(4,\)"):
        t.update(grads, state._replace(iterations=wide), params)
    for name, value in state.hyperparams.items():
        hp = tuple.__new__(type(state.hyperparams), [jnp.broadcast_to(v, (4,)) if k == name else v for k, v in state.hyperparams.items()])
        with pytest.raises(ValueError, match=rf"its '{name}' has shape \(4,\)"):
            t.update(grads, state._replace(hyperparams=hp), params)
    t = jk.keras3.nadam(1e-3)  # Keras 3's Nadam keeps its momentum product as a scalar of the state
    state = t.init(params)
    (name,) = state.scalars
    with pytest.raises(ValueError, match=rf"The state of Nadam .* its '{name}' has shape \(4,\)"):
        t.update(grads, state._replace(scalars={name: jnp.ones(4)}), params)
    ema = jk.ema(0.9)
    state = ema.init(params)
    with pytest.raises(ValueError, match=r"The state of EMA .* its 'iterations' has shape \(4,\)"):
        ema.update(grads, state._replace(iterations=wide), params)
    acc = jk.accumulate_gradients(jk.sgd(0.1), 2)
    state = acc.init(params)
    with pytest.raises(ValueError, match=r"The state of gradient accumulation .* its 'iterations' has shape \(4,\)"):
        acc.update(grads, state._replace(iterations=wide), params)


def test_loss_scaling_and_weight_decay_name_another_state():
    params, grads = _problem()
    inner = jk.legacy.sgd(0.1)
    for t in (jk.mixed_precision.loss_scale_optimizer(inner), jk.keras3.loss_scale_optimizer(inner)):
        with pytest.raises(ValueError, match=r"LossScaleOptimizer's update \(OptimizerState\) is not the LossScaleState"):
            t.update(grads, inner.init(params), params)
    wd = jk.decoupled_weight_decay(0.01, 0.1)
    with pytest.raises(ValueError, match=r"decoupled_weight_decay's update \(OptimizerState\) is not the WeightDecayState"):
        wd.update(grads, inner.init(params), params)
