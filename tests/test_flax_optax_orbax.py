"""Our states in flax (serialization, linen TrainState, nnx.Optimizer), optax (tree_utils,
inject_hyperparams, MultiSteps, chain, extra arguments, masked/partition/apply_if_finite)
and orbax (save and restore, with and without a target)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import linen as nn
from flax import nnx, serialization
from flax.training import train_state

import jaxopt_keras as jk
from helpers import all_factories
from jaxopt_keras import io
from jaxopt_keras.transforms.routing import multi_optimizer

PARAMS = {"Dense_0": {"kernel": jnp.linspace(-1.0, 1.0, 12).reshape(4, 3), "bias": jnp.zeros(3)}, "scale": jnp.ones(())}


def grads(i):
    return jax.tree_util.tree_map(lambda p: jnp.cos(jnp.arange(p.size, dtype=p.dtype).reshape(p.shape) + i), PARAMS)


def run(tx, params, state, start, n, step=None):
    step = step or jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(g, s, p)))
    for i in range(start, start + n):
        params, state = step(params, state, grads(i))
    return params, state


def assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


TRANSFORMS = [(n, f) for n, f in all_factories()] + [
    ("current.adam+ema+clip", lambda: jk.adam(use_ema=True, clipnorm=1.0)),
    ("current.adamw+accumulation", lambda: jk.adamw(weight_decay=0.01, gradient_accumulation_steps=2)),
    ("current.adafactor", lambda: jk.adafactor()),
    ("legacy.nadam", lambda: jk.legacy.nadam()),
]


@pytest.mark.parametrize("name,factory", TRANSFORMS, ids=[n for n, _ in TRANSFORMS])
def test_flax_serialization_round_trips_and_continues(name, factory):
    tx = factory()
    params, state = run(tx, PARAMS, tx.init(PARAMS), 0, 3)
    restored = serialization.from_bytes(tx.init(PARAMS), serialization.to_bytes(state))
    assert_trees_equal(state, restored)
    assert_trees_equal(run(tx, params, state, 3, 3), run(tx, params, jax.tree_util.tree_map(jnp.asarray, restored), 3, 3))


def test_flat_layout_state_serializes():
    flat, layout = jk.flat.ravel(PARAMS)
    tx = jk.legacy.adam()
    state = tx.init(flat)
    restored = serialization.from_bytes(tx.init(flat), serialization.to_bytes(state))
    assert_trees_equal(state, restored)


def test_a_flat_state_saved_without_the_padding_restores_and_a_wrong_length_is_refused():
    """Long flat buffers are padded (core/flat.py): a state saved before, with
    the leaves' elements only, restores with the padding's zeros appended; a
    buffer of any other length is a ValueError naming it, and nothing is built."""
    params = {"w": jnp.linspace(-1.0, 1.0, 6001), "b": jnp.ones(3)}
    flat, layout = jk.flat.ravel(params)
    used, size = layout.used[0], layout.sizes[0]
    assert size > used
    tx = jk.adam(0.01)
    state = tx.init(flat)
    _, state = tx.update(flat, state, flat)
    saved = serialization.to_state_dict(state)
    unpadded = jax.tree_util.tree_map(lambda x: x[:used] if np.shape(x) == (size,) else x, saved)
    restored = serialization.from_state_dict(tx.init(flat), unpadded)
    assert_trees_equal(state, restored)
    short = jax.tree_util.tree_map(lambda x: x[: used - 1] if np.shape(x) == (size,) else x, saved)
    with pytest.raises(ValueError, match=rf"Buffer 0 of the flat layout .* needs shape \({size},\) .*holds shape \({used - 1},\)"):
        serialization.from_state_dict(tx.init(flat), short)


def test_linen_train_state():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(1)(jnp.tanh(nn.Dense(3)(x)))

    x, y = jnp.linspace(-1, 1, 8).reshape(2, 4), jnp.ones((2, 1))
    model = Net()
    ts = train_state.TrainState.create(apply_fn=model.apply, params=model.init(jax.random.key(0), x)["params"], tx=jk.legacy.adam(0.01, decay=1e-3))

    @jax.jit
    def step(ts):
        g = jax.grad(lambda p: jnp.mean((ts.apply_fn({"params": p}, x) - y) ** 2))(ts.params)
        return ts.apply_gradients(grads=g)

    for _ in range(3):
        ts = step(ts)
    assert int(ts.opt_state.iterations) == 3
    ts = ts.replace(opt_state=jk.set_hyperparams(ts.opt_state, learning_rate=0.5))
    blob = serialization.to_bytes(ts)
    back = serialization.from_bytes(ts, blob)
    assert float(jk.get_hyperparams(back.opt_state)["learning_rate"]) == 0.5
    assert_trees_equal(step(ts).params, step(back.replace(opt_state=jax.tree_util.tree_map(jnp.asarray, back.opt_state))).params)


def test_linen_train_state_over_flat_layout_params():
    """``TrainState.create`` and ``apply_gradients`` ask ``"overwrite_with_gradient" in``
    the params and the gradients: a FlatTree answers False (it was a TypeError,
    "argument of type 'FlatTree' is not iterable").  The run is the tree layout's."""
    layout = jk.flat.Layout(PARAMS)
    tx = jk.adam(0.01)
    ts = train_state.TrainState.create(apply_fn=None, params=layout.ravel(PARAMS), tx=tx)
    for i in range(3):
        ts = jax.jit(lambda ts, g: ts.apply_gradients(grads=g))(ts, layout.ravel(grads(i)))
    assert isinstance(ts.params, jk.flat.FlatTree) and int(ts.step) == 3
    ref, ref_state = PARAMS, tx.init(PARAMS)
    for i in range(3):
        u, ref_state = jax.jit(tx.update)(grads(i), ref_state, ref)
        ref = optax.apply_updates(ref, u)
    for a, b in zip(jax.tree_util.tree_leaves(layout.unravel(ts.params)), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=4e-6, atol=4e-7)  # test_flat.py's float32 bound
    assert_trees_equal(serialization.from_bytes(ts, serialization.to_bytes(ts)), ts)


class Net(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(4, 3, rngs=rngs)
        self.out = nnx.Linear(3, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(jnp.tanh(self.hidden(x)))


def test_nnx_optimizer_hyperparameters():
    x, y = jnp.linspace(-1, 1, 8).reshape(2, 4), jnp.ones((2, 1))
    model = Net(nnx.Rngs(0))
    tx = jk.adam(0.01)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    def loss(m):
        return jnp.mean((m(x) - y) ** 2)

    optimizer.update(model, nnx.grad(loss)(model))
    assert isinstance(jk.get_hyperparams(optimizer.opt_state)["learning_rate"], jax.Array)
    optimizer.opt_state = jk.set_hyperparams(optimizer.opt_state, learning_rate=0.05, beta_1=0.5)
    assert isinstance(optimizer.opt_state.hyperparams.learning_rate, nnx.Variable)  # wrappers kept
    optimizer.opt_state = optax.tree_utils.tree_set(optimizer.opt_state, beta_2=0.9)
    params = nnx.as_pure(nnx.state(model, nnx.Param))
    state = nnx.as_pure(optimizer.opt_state)
    grads = nnx.grad(loss)(model)
    optimizer.update(model, grads)  # the next update merges the new state
    updates, _ = tx.update(nnx.as_pure(nnx.state(grads, nnx.Param)), state, params)
    assert_trees_equal(nnx.as_pure(nnx.state(model, nnx.Param)), optax.apply_updates(params, updates))
    hp = jk.get_hyperparams(optimizer.opt_state)
    assert float(hp["learning_rate"]) == np.float32(0.05) and float(hp["beta_2"]) == np.float32(0.9)


def test_optax_tree_utils_find_hyperparameters_by_name():
    tx = jk.chain(jk.clip_by_norm(1.0), jk.adam(0.01, beta_1=0.8))
    state = tx.init(PARAMS)
    assert float(optax.tree_utils.tree_get(state, "learning_rate")) == np.float32(0.01)
    assert float(optax.tree_utils.tree_get(state, "beta_1")) == np.float32(0.8)
    new = optax.tree_utils.tree_set(state, learning_rate=0.5, beta_1=0.7)
    assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(state)
    # dtypes kept, derived values follow: the same state set_hyperparams gives.
    assert_trees_equal(new, jk.set_hyperparams(state, learning_rate=0.5, beta_1=0.7))
    traces = []

    @jax.jit
    def step(p, s, g):
        traces.append(1)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    p, s = step(PARAMS, state, grads(0))
    step(p, optax.tree_utils.tree_set(s, learning_rate=0.1), grads(1))
    assert len(traces) == 1


def test_optax_inject_hyperparams():
    """Our state already holds the hyperparameters; inject_hyperparams drives them from its own."""
    # Legacy `decay` is the constructor's (OptimizerV2's `_initial_decay`): static.
    injected = optax.inject_hyperparams(jk.legacy.adam, static_args=("decay",))(learning_rate=0.01, decay=1e-3)
    plain = jk.legacy.adam(learning_rate=0.01, decay=1e-3)
    si, sp = injected.init(PARAMS), plain.init(PARAMS)
    step_i = jax.jit(injected.update)
    pi = pp = PARAMS
    for i in range(4):
        if i == 2:
            si.hyperparams["learning_rate"] = jnp.asarray(0.5)
            sp = jk.set_hyperparams(sp, learning_rate=0.5)
        ui, si = step_i(grads(i), si, pi)
        up, sp = plain.update(grads(i), sp, pp)
        pi, pp = optax.apply_updates(pi, ui), optax.apply_updates(pp, up)
    for a, b in zip(jax.tree_util.tree_leaves(pi), jax.tree_util.tree_leaves(pp)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    plain_call = optax.inject_hyperparams(jk.adam)(learning_rate=1e-2)  # no extra arguments needed
    jax.jit(plain_call.update)(grads(0), plain_call.init(PARAMS), PARAMS)
    # Arguments the state does not hold are static.
    clipped = optax.inject_hyperparams(jk.adam, static_args=("clipnorm",))(learning_rate=0.01, clipnorm=1.0)
    jax.jit(clipped.update)(grads(0), clipped.init(PARAMS), PARAMS)
    unclipped = optax.inject_hyperparams(jk.adam)(learning_rate=0.01, clipnorm=1.0)
    with pytest.raises(TypeError, match="static_args"):
        jax.jit(unclipped.update)(grads(0), unclipped.init(PARAMS), PARAMS)
    for factory, kwargs in ((jk.legacy.adam, dict(decay=1e-3)), (jk.legacy.nadam, dict(schedule_decay=1e-3))):
        traced_decay = optax.inject_hyperparams(factory)(learning_rate=0.01, **kwargs)
        with pytest.raises(TypeError, match=r"static_args=\('(schedule_)?decay',\)"):
            jax.jit(traced_decay.update)(grads(0), traced_decay.init(PARAMS), PARAMS)


_RHO_F32 = {"rho": float(np.float32(0.9))}  # inject_hyperparams rounds rho to float32 (flax.md)


@pytest.mark.parametrize(
    "factory,static,rounded",
    [(jk.legacy.sgd, ("decay",), {}), (jk.keras3.sgd, (), {}), (jk.legacy.rmsprop, ("decay",), {}),
     (jk.rmsprop, ("ema_overwrite_frequency",), _RHO_F32), (jk.keras3.rmsprop, ("ema_overwrite_frequency",), _RHO_F32)],
    ids=["legacy sgd", "keras3 sgd", "legacy rmsprop", "current rmsprop", "keras3 rmsprop"],
)
def test_optax_inject_hyperparams_momentum_decides_the_slot(factory, static, rounded):
    """A momentum slot exists when ``momentum > 0``, which a traced value cannot
    decide: built from the default (0) the jitted update dropped the slot and
    the momentum (0.2-0.4 off after 3 steps).  A traced ``momentum`` is
    refused; a static one steps bit for bit as the plain optimizer, jitted
    alike, given the ``rho`` inject_hyperparams rounds to float32 (the legacy
    family rounds it so itself)."""
    traced = optax.inject_hyperparams(factory, static_args=static)(learning_rate=0.1, momentum=0.9)
    with pytest.raises(TypeError, match=r"static_args=\('momentum',\)"):
        jax.jit(traced.update)(grads(0), traced.init(PARAMS), PARAMS)
    injected = optax.inject_hyperparams(factory, static_args=static + ("momentum",))(learning_rate=0.1, momentum=0.9)
    plain = factory(learning_rate=0.1, momentum=0.9, **rounded)
    si, sp, pi, pp = injected.init(PARAMS), plain.init(PARAMS), PARAMS, PARAMS
    for i in range(3):
        ui, si = jax.jit(injected.update)(grads(i), si, pi)
        up, sp = jax.jit(plain.update)(grads(i), sp, pp)
        pi, pp = optax.apply_updates(pi, ui), optax.apply_updates(pp, up)
    for a, b in zip(jax.tree_util.tree_leaves(pi), jax.tree_util.tree_leaves(pp)):
        np.testing.assert_array_equal(a, b)


def test_optax_multisteps():
    tx = optax.MultiSteps(jk.legacy.adam(0.01), every_k_schedule=2)
    inner = jk.legacy.adam(0.01)
    params, state = run(tx, PARAMS, tx.init(PARAMS), 0, 4)
    ref, ref_state = PARAMS, inner.init(PARAMS)
    for k in (0, 2):
        g = jax.tree_util.tree_map(lambda a, b: (a + b) / 2, grads(k), grads(k + 1))
        u, ref_state = inner.update(g, ref_state, ref)
        ref = optax.apply_updates(ref, u)
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert float(optax.tree_utils.tree_get(state, "learning_rate")) == np.float32(0.01)


def test_an_optax_multisteps_object_chains_as_in_optax_chain():
    """``optax.MultiSteps`` is an object with ``init``/``update``, not a tuple:
    ``optax.chain`` takes it, and so does ``jk.chain`` (it was a TypeError,
    "cannot unpack non-iterable MultiSteps object"), stepping as optax's chain."""
    ours = jk.chain(optax.clip(0.5), optax.MultiSteps(jk.legacy.adam(0.01), every_k_schedule=2))
    theirs = optax.chain(optax.clip(0.5), optax.MultiSteps(jk.legacy.adam(0.01), every_k_schedule=2))
    a, _ = run(ours, PARAMS, ours.init(PARAMS), 0, 4)
    b, _ = run(theirs, PARAMS, theirs.init(PARAMS), 0, 4)
    assert_trees_equal(a, b)
    assert not np.allclose(a["scale"], PARAMS["scale"])


def test_optax_chain_both_ways():
    ours_in_optax = optax.chain(optax.clip_by_global_norm(1.0), jk.legacy.sgd(0.1, momentum=0.9))
    optax_in_ours = jk.chain(optax.clip_by_global_norm(1.0), jk.legacy.sgd(0.1, momentum=0.9))
    a, _ = run(ours_in_optax, PARAMS, ours_in_optax.init(PARAMS), 0, 3)
    b, _ = run(optax_in_ours, PARAMS, optax_in_ours.init(PARAMS), 0, 3)
    assert_trees_equal(a, b)
    mixed = jk.chain(jk.legacy.adam(0.01), optax.scale(2.0))
    c, _ = run(mixed, PARAMS, mixed.init(PARAMS), 0, 2)
    assert not np.allclose(c["scale"], PARAMS["scale"])



def _plateau():
    return optax.contrib.reduce_on_plateau(factor=0.5, patience=1)


LOSSES = [3.0, 2.0, 2.5, 2.6, 2.7, 2.8]  # better once, then worse: each worse step halves the scale (patience 1)
WITH_VALUE = {
    "chain": lambda: jk.chain(jk.legacy.adam(0.01), _plateau()),
    "legacy.loss_scale": lambda: jk.mixed_precision.loss_scale_optimizer(jk.chain(jk.legacy.adam(0.01), _plateau())),
    "keras3.loss_scale": lambda: jk.keras3.loss_scale_optimizer(jk.chain(jk.keras3.adam(0.01), _plateau())),
    "accumulation": lambda: jk.accumulate_gradients(jk.chain(jk.keras3.adam(0.01), _plateau()), 2),
    "multi_optimizer": lambda: jk.keras3.multi_optimizer({"bias": jk.keras3.sgd(0.1)}, jk.chain(jk.keras3.adam(0.01), _plateau())),
    "inject_hyperparams": lambda: jk.chain(optax.inject_hyperparams(jk.adam)(learning_rate=0.01), _plateau()),
}


@pytest.mark.parametrize("make", list(WITH_VALUE.values()), ids=list(WITH_VALUE))
def test_optax_extra_arguments_reach_the_transform_that_reads_them(make):
    """optax's ``GradientTransformationExtraArgs`` convention: ``update(g, s, p, value=loss)``
    passes ``value`` through our chain and wrappers to ``reduce_on_plateau``,
    whose state then is what it is alone on the same losses."""
    tx = make()
    step = jax.jit(lambda p, s, g, v: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(g, s, p, value=v)))
    params, state = PARAMS, tx.init(PARAMS)
    alone, alone_state = _plateau(), _plateau().init(PARAMS)
    every = 2 if make is WITH_VALUE["accumulation"] else 1  # the inner steps on every second call only
    for i, loss in enumerate(LOSSES):
        params, state = step(params, state, grads(i), jnp.float32(loss))
        if (i + 1) % every == 0:
            _, alone_state = alone.update(grads(i), alone_state, PARAMS, value=jnp.float32(loss))
    found = [x for x in jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, optax.contrib.ReduceLROnPlateauState))
             if isinstance(x, optax.contrib.ReduceLROnPlateauState)]
    assert len(found) == 1
    assert_trees_equal(found[0], alone_state)
    assert float(alone_state.scale) == (0.25 if every == 2 else 0.0625)  # the values did arrive


def test_every_optimizer_takes_and_ignores_optax_extra_arguments():
    """What optax's own optimizers do (``optax.adam(...).update(g, s, p, value=loss)``):
    a loop written for them runs unchanged, and the value changes nothing."""
    chained = [
        ("chain", lambda: jk.chain(optax.scale(2.0), jk.adam(0.01, use_ema=True, clipnorm=1.0))),
        ("keras3.accumulation", lambda: jk.keras3.adam(0.01, gradient_accumulation_steps=2, global_clipnorm=1.0)),
        ("keras3.loss_scale", lambda: jk.keras3.loss_scale_optimizer(jk.keras3.sgd(0.01, momentum=0.9))),
    ]
    for name, factory in all_factories() + chained:
        tx = factory()
        state = tx.init(PARAMS)
        plain = tx.update(grads(0), state, PARAMS)
        extra = tx.update(grads(0), state, PARAMS, value=jnp.float32(1.5), other="ignored")
        assert_trees_equal(plain, extra)


def test_our_optimizers_inside_optax_combinators_step_each_part_as_alone():
    """``optax.masked``, ``optax.partition`` and ``optax.apply_if_finite`` around ours:
    each part steps exactly as our optimizer alone on that part's leaves."""
    mask = {"Dense_0": {"kernel": True, "bias": False}, "scale": True}
    part = lambda tree: {"Dense_0": {"kernel": tree["Dense_0"]["kernel"]}, "scale": tree["scale"]}  # noqa: E731
    alone = jk.legacy.adam(0.01)
    ref, ref_state = part(PARAMS), alone.init(part(PARAMS))
    for i in range(3):  # jitted, as `run` is: eager ops round without XLA's fused multiply-adds
        u, ref_state = jax.jit(alone.update)(part(grads(i)), ref_state, ref)
        ref = optax.apply_updates(ref, u)
    masked = optax.masked(jk.legacy.adam(0.01), mask)
    partitioned = optax.partition({"ours": jk.legacy.adam(0.01), "frozen": optax.set_to_zero()},
                                  {"Dense_0": {"kernel": "ours", "bias": "frozen"}, "scale": "ours"})
    for tx in (masked, partitioned):
        params, _ = run(tx, PARAMS, tx.init(PARAMS), 0, 3)
        assert_trees_equal(part(params), ref)
    np.testing.assert_array_equal(params["Dense_0"]["bias"], PARAMS["Dense_0"]["bias"])  # frozen
    # apply_if_finite skips a step whose gradients are not finite, without calling ours.
    guarded = optax.apply_if_finite(jk.legacy.adam(0.01), max_consecutive_errors=3)
    bad = jax.tree_util.tree_map(lambda g: g.at[(0,) * g.ndim].set(jnp.nan), grads(1))
    params, state = PARAMS, guarded.init(PARAMS)
    for g in (grads(0), bad, grads(2)):
        u, state = jax.jit(guarded.update)(g, state, params)
        params = optax.apply_updates(params, u)
    ref, ref_state = PARAMS, jk.legacy.adam(0.01).init(PARAMS)
    for g in (grads(0), grads(2)):
        u, ref_state = jax.jit(jk.legacy.adam(0.01).update)(g, ref_state, ref)
        ref = optax.apply_updates(ref, u)
    assert_trees_equal(params, ref)


@pytest.mark.parametrize("target", [True, False], ids=["with_target", "without_target"])
def test_orbax_round_trip_continues_bit_for_bit(tmp_path, target):
    tx = jk.adam(0.01, use_ema=True, clipnorm=1.0)
    step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(g, s, p)))
    params, state = run(tx, PARAMS, tx.init(PARAMS), 0, 3, step)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", {"params": params, "opt_state": state})
    checkpointer.wait_until_finished()
    if target:
        abstract = jax.eval_shape(lambda: {"params": params, "opt_state": state})
        restored = checkpointer.restore(tmp_path / "ckpt", abstract)
    else:
        raw = checkpointer.restore(tmp_path / "ckpt")
        restored = io.state_from_tree({"params": PARAMS, "opt_state": tx.init(PARAMS)}, raw)
    assert_trees_equal(restored, {"params": params, "opt_state": state})
    assert_trees_equal(run(tx, params, state, 3, 4, step), run(tx, restored["params"], restored["opt_state"], 3, 4, step))


def test_an_orbax_flat_state_saved_without_the_padding_restores_through_state_from_tree(tmp_path):
    """A flat state saved before long buffers were padded, restored by orbax
    without a target: ``io.state_from_tree`` appends the padding's zeros, and
    the state continues bit for bit.  A buffer of any other length is a
    ValueError naming it."""
    params = {"w": jnp.linspace(-1.0, 1.0, 6001), "b": jnp.ones(3)}
    flat, layout = jk.flat.ravel(params)
    used, size = layout.used[0], layout.sizes[0]
    assert size > used
    tx = jk.adam(0.01)
    step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(g, s, p)))
    grads = jax.tree_util.tree_map(lambda x: 0.5 * x, flat)
    flat, state = step(flat, tx.init(flat), grads)

    def unpadded(tree, keep=used):
        # As the layout of before the padding saved it: the leaves' elements only.
        return jax.tree_util.tree_map(lambda x: np.asarray(x)[:keep] if np.shape(x) == (size,) else np.asarray(x), tree)

    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "old", {"params": unpadded(flat), "opt_state": unpadded(state)})
    checkpointer.save(tmp_path / "short", {"params": unpadded(flat), "opt_state": unpadded(state, used - 1)})
    checkpointer.wait_until_finished()
    target = {"params": jk.flat.ravel(params)[0], "opt_state": tx.init(flat)}
    restored = io.state_from_tree(target, checkpointer.restore(tmp_path / "old"))
    # Bit-equal to the padded state: the appended padding is zeros.
    assert_trees_equal(restored, {"params": flat, "opt_state": state})
    assert_trees_equal(step(flat, state, grads), step(restored["params"], restored["opt_state"], grads))
    with pytest.raises(ValueError, match=rf"Buffer 0 of the flat layout .* needs shape \({size},\) .*holds shape \({used - 1},\)"):
        io.state_from_tree(target, checkpointer.restore(tmp_path / "short"))


ROW_SPARSE = [("legacy adagrad", lambda: jk.legacy.adagrad(0.1)), ("legacy sgd momentum", lambda: jk.legacy.sgd(0.1, momentum=0.9)),
              ("current adagrad", lambda: jk.adagrad(0.1)), ("legacy ftrl", lambda: jk.legacy.ftrl(0.1))]


@pytest.mark.parametrize("make", [m for _, m in ROW_SPARSE], ids=[n for n, _ in ROW_SPARSE])
def test_row_sparse_updates_in_flax_loops(make):
    # These optimizers update the gradient's rows only and return an IndexedSlices
    # update; optax.apply_updates (which TrainState and nnx.Optimizer call) adds it
    # as jk.apply_updates does, duplicate rows summed, padding rows dropped.
    table = jnp.linspace(-1.0, 1.0, 40).reshape(10, 4)

    def sparse(i):
        return jk.IndexedSlices(jnp.cos(jnp.arange(12.0).reshape(3, 4) + i), jnp.array([1, 7, 7 if i % 2 else 10]), (10, 4))

    tx = make()
    expected, state = {"e": table}, tx.init({"e": table})
    for i in range(4):
        updates, state = tx.update({"e": sparse(i)}, state, expected)
        assert isinstance(updates["e"], jk.IndexedSlices)
        np.testing.assert_array_equal(np.asarray(optax.apply_updates(expected, updates)["e"]), np.asarray(jk.apply_updates(expected, updates)["e"]))
        expected = jk.apply_updates(expected, updates)
    ts = train_state.TrainState.create(apply_fn=None, params={"e": table}, tx=make())
    for i in range(4):
        ts = ts.apply_gradients(grads={"e": sparse(i)})
    assert_trees_equal(ts.params, expected)

    class Net(nnx.Module):
        def __init__(self):
            self.e = nnx.Param(table)

    net = Net()
    optimizer = nnx.Optimizer(net, make(), wrt=nnx.Param)
    for i in range(4):
        optimizer.update(net, jax.tree_util.tree_map(lambda _: sparse(i), nnx.state(net, nnx.Param)))
    np.testing.assert_array_equal(np.asarray(net.e.value), np.asarray(expected["e"]))


ROUTED = {
    "muon": lambda paths: jk.keras3.muon(learning_rate=0.01, paths=paths),
    "multi_optimizer": lambda paths: multi_optimizer({".*kernel": jk.keras3.adam(0.01)}, jk.keras3.sgd(0.1, momentum=0.9), paths=paths),
}


@pytest.mark.parametrize("name", list(ROUTED))
def test_routed_optimizer_paths_in_nnx_optimizer(name):
    # Paths made over nnx.state(model, nnx.Param) keep each string in its Param;
    # nnx.Optimizer inits on that state and updates on the bare arrays: the step
    # reads the string inside (core/paths.given_paths; it was a ValueError, "a variable's
    # path is a string", for Muon, and "unhashable type: 'Param'" for a MultiOptimizer).
    class Net(nnx.Module):
        def __init__(self):
            self.embed = nnx.Embed(6, 4, rngs=nnx.Rngs(0))
            self.dense = nnx.Linear(4, 5, rngs=nnx.Rngs(1))

    keras_paths = {("embed", "embedding"): "embedding/embeddings", ("dense", "kernel"): "dense/kernel", ("dense", "bias"): "dense/bias"}

    def paths_of(tree):
        return jax.tree_util.tree_map_with_path(lambda kp, _: keras_paths[tuple(k.key for k in kp[:2])], tree)

    net = Net()
    params = nnx.state(net, nnx.Param)
    optimizer = nnx.Optimizer(net, ROUTED[name](paths_of(params)), wrt=nnx.Param)
    pure = nnx.to_pure_dict(params)
    tx = ROUTED[name](paths_of(pure))
    state = tx.init(pure)
    for i in range(3):
        wrapped = jax.tree_util.tree_map(lambda p: jnp.cos(jnp.arange(p.size, dtype=p.dtype).reshape(p.shape) + i), nnx.state(net, nnx.Param))
        optimizer.update(net, wrapped)  # as nnx.grad gives them
        grads = nnx.to_pure_dict(wrapped)
        updates, state = tx.update(grads, state, pure)
        pure = jk.apply_updates(pure, updates)
    assert_trees_equal(nnx.to_pure_dict(nnx.state(net, nnx.Param)), pure)
