"""state_from_keras and write_keras: structure, placement on a mesh, nnx, wrapped transformations, round trips."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxopt_keras as jk
import kerasfiles as kf
import tf_keras
from jaxopt_keras import io, optimizers, registry
from jaxopt_keras.core.state import find_state
from jaxopt_keras.keras.factories import make_factory
from jaxopt_keras.transforms.ema import EmaState


def wide():
    """Input(16) -> Dense(8, tanh) -> Dense(8): every dimension splits over 8 devices."""
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    return tf_keras.Sequential([tf_keras.Input((16,)), tf_keras.layers.Dense(8, activation="tanh"), tf_keras.layers.Dense(8)])


def wide_params():
    return {"Dense_0": {"kernel": jnp.zeros((16, 8)), "bias": jnp.zeros(8)}, "Dense_1": {"kernel": jnp.zeros((8, 8)), "bias": jnp.zeros(8)}}


def train(make_opt, steps=3):
    model = wide()
    model.compile(optimizer=make_opt(), loss="mse")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(8 * steps, 16)).astype("float32"), rng.normal(size=(8 * steps, 8)).astype("float32"), batch_size=8, verbose=0)
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("state")
    out = {}
    for name, make in (
        ("legacy", lambda: kf.L.Adam(0.01, decay=0.01, clipnorm=1.0)),
        ("ema", lambda: kf.C.Adam(0.01, use_ema=True, ema_momentum=0.9)),
        ("nadam", lambda: kf.C.Nadam(0.01)),
    ):
        out[name] = kf.save_all(train(make), str(d / name), kinds=("h5", "keras"))
    return out


@pytest.mark.parametrize("family", ["legacy", "current"])
def test_factory_and_class_states_have_one_structure(family):
    params = [jnp.ones((3, 2)), jnp.zeros(2)]
    for entry in registry.entries(family):
        for kwargs in ({}, {"learning_rate": 0.01, "clipnorm": 1.0}):
            a = make_factory(entry, family)(**kwargs).init(params)
            cls = getattr(optimizers.legacy if family == "legacy" else optimizers, entry.class_name)
            b = cls(**kwargs).transformation.init(params)
            assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b), (entry.class_name, kwargs)


@pytest.mark.parametrize("name", ["legacy", "ema", "nadam"])
def test_the_state_is_tx_init_filled_from_the_file(files, name):
    ckpt = io.read_keras(files[name]["h5"])
    tx = io.optimizer_from_keras(ckpt).transformation
    params = io.params_from_keras(wide_params(), ckpt)
    state = io.state_from_keras(tx, params, ckpt)
    assert jax.tree_util.tree_structure(state) == jax.tree_util.tree_structure(tx.init(params))
    assert int(jk.optimizers.entries.read_iterations(state)) == ckpt.iterations == 3
    for (key, ours), theirs in zip(io.keras_weights(tx, params, state, ckpt), ckpt.optimizer_weights.values()):
        np.testing.assert_array_equal(ours, theirs)
    # The same state the stateful Keras layer builds with set_weights.
    opt = io.optimizer_from_keras(ckpt)
    opt.build([jk.Variable(ckpt.model_weights[k]) for k in ckpt.trainable])
    opt.set_weights(list(ckpt.optimizer_weights.values()))
    grads = jax.tree_util.tree_map(lambda p: jnp.cos(jnp.arange(p.size, dtype=p.dtype).reshape(p.shape)), params)
    ours, _ = tx.update(grads, state, params)  # both eager: the same operations, bit for bit
    order = [("Dense_0", "kernel"), ("Dense_0", "bias"), ("Dense_1", "kernel"), ("Dense_1", "bias")]  # ckpt.trainable's
    theirs, _ = opt.transformation.update([grads[a][b] for a, b in order], opt.state, [params[a][b] for a, b in order])
    for (a, b), expected in zip(order, theirs):
        np.testing.assert_array_equal(ours[a][b], expected)


@pytest.mark.parametrize("name", ["legacy", "ema"])
def test_slots_are_placed_like_their_parameters_on_a_mesh(files, name):
    mesh = Mesh(np.array(jax.devices()[:8]), ("x",))
    specs = {"Dense_0": {"kernel": P("x", None), "bias": P("x")}, "Dense_1": {"kernel": P(None, "x"), "bias": P("x")}}
    sharded = jax.tree_util.tree_map(lambda p, s: jax.device_put(p, NamedSharding(mesh, s)), wide_params(), specs)
    ckpt = io.read_keras(files[name]["h5"])
    tx = io.optimizer_from_keras(ckpt).transformation
    params = io.params_from_keras(sharded, ckpt)
    state = io.state_from_keras(tx, params, ckpt)
    core = find_state(state, jk.OptimizerState)
    trees = [getattr(core.slots, f) for f in core.slots._fields if getattr(core.slots, f) is not None]
    if name == "ema":
        trees.append(find_state(state, EmaState).average)
    for tree in trees:
        for slot, param in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(params)):
            assert slot.sharding == param.sharding
            assert len(slot.addressable_shards) == 8 and slot.addressable_shards[0].data.size < slot.size
    for (_, ours), theirs in zip(io.keras_weights(tx, params, state, ckpt), ckpt.optimizer_weights.values()):
        np.testing.assert_array_equal(ours, theirs)
    _, new_state = jax.jit(tx.update)(jax.tree_util.tree_map(jnp.ones_like, params), state, params)
    for slot, param in zip(jax.tree_util.tree_leaves(find_state(new_state, jk.OptimizerState).slots), jax.tree_util.tree_leaves(params) * 2):
        assert slot.sharding.is_equivalent_to(param.sharding, slot.ndim)


class Wide(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(16, 8, rngs=rngs)
        self.out = nnx.Linear(8, 8, rngs=rngs)

    def __call__(self, x):
        return self.out(jnp.tanh(self.hidden(x)))


def test_nnx_optimizer_takes_the_ported_state_in_one_call(files):
    ckpt = io.read_keras(files["legacy"]["h5"])
    tx = io.optimizer_from_keras(ckpt).transformation
    model = Wide(nnx.Rngs(0))
    nnx.update(model, io.params_from_keras(nnx.state(model, nnx.Param), ckpt))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    state = io.state_from_keras(tx, nnx.state(model, nnx.Param), ckpt)
    nnx.update(optimizer.opt_state, nnx.state(state))  # the one call
    x, y = jnp.linspace(-1, 1, 32).reshape(2, 16), jnp.ones((2, 8))

    def loss(m):
        return jnp.mean((m(x) - y) ** 2)

    params = nnx.as_pure(nnx.state(model, nnx.Param))  # values now (the state's variables follow the model)
    grads = nnx.grad(loss)(model)
    optimizer.update(model, grads)
    updates, _ = tx.update(nnx.as_pure(nnx.state(grads, nnx.Param)), nnx.as_pure(state), params)
    expected = optax.apply_updates(params, updates)
    for a, b in zip(jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_array_equal(a, b)
    assert int(jk.optimizers.entries.read_iterations(nnx.as_pure(optimizer.opt_state))) == 4


def test_a_wrapped_optimizer_state_is_found_inside(files):
    ckpt = io.read_keras(files["legacy"]["h5"])
    tx = io.optimizer_from_keras(ckpt).transformation
    params = io.params_from_keras(wide_params(), ckpt)
    for wrapped in (optax.chain(optax.identity(), tx), optax.MultiSteps(tx, every_k_schedule=2)):
        state = io.state_from_keras(wrapped, params, ckpt)
        assert jax.tree_util.tree_structure(state) == jax.tree_util.tree_structure(wrapped.init(params))
        for (_, ours), theirs in zip(io.keras_weights(tx, params, state, ckpt), ckpt.optimizer_weights.values()):
            np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("name,kind", [("legacy", "h5"), ("ema", "h5"), ("ema", "keras"), ("nadam", "keras")])
def test_write_keras_then_read_keras_gives_the_state_back(files, tmp_path, name, kind):
    ckpt = io.read_keras(files[name][kind])
    tx = io.optimizer_from_keras(ckpt).transformation
    params = io.params_from_keras(wide_params(), ckpt)
    state = io.state_from_keras(tx, params, ckpt)
    step = jax.jit(lambda p, s: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(jax.tree_util.tree_map(lambda x: 0.01 * x + 0.1, p), s, p)))
    for _ in range(2):
        params, state = step(params, state)
    state = jk.set_hyperparams(state, learning_rate=0.005)
    path = io.write_keras(tmp_path / f"out.{kind}", tx, params, state, like=files[name][kind])
    back = io.read_keras(path)
    assert back.iterations == 5 and back.family == ckpt.family
    assert back.config["config"]["learning_rate"] == float(np.float32(0.005))
    for (_, ours), theirs in zip(io.keras_weights(tx, params, state, ckpt), back.optimizer_weights.values()):
        np.testing.assert_array_equal(ours, theirs)
    for key, leaf in zip(["dense/bias", "dense/kernel", "dense_1/bias", "dense_1/kernel"], jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(back.model_weights[key], leaf)


def test_a_step_count_beyond_the_counter_is_refused_not_wrapped(files):
    """Without x64 the counter is int32: a file's 2**31 (or 2**32 + 7) used to
    become -2**31 (or 7), and the next steps computed with that ``t``."""
    ckpt = io.read_keras(files["legacy"]["h5"])
    tx = io.optimizer_from_keras(ckpt).transformation
    params = io.params_from_keras(wide_params(), ckpt)
    for count in (2**31, 2**32 + 7):
        big = dataclasses.replace(ckpt, iterations=count, optimizer_weights={**ckpt.optimizer_weights, "iter": np.int64(count)})
        with pytest.raises(io.KerasFileError, match=f"{count} is outside the range"):
            io.state_from_keras(tx, params, big)
        opt = io.optimizer_from_keras(big)
        opt.build([jk.Variable(ckpt.model_weights[k]) for k in ckpt.trainable])
        before = opt.get_weights()
        with pytest.raises(ValueError, match=f"{count} is outside the range"):
            opt.set_weights(list(big.optimizer_weights.values()))
        for a, b in zip(before, opt.get_weights()):
            np.testing.assert_array_equal(a, b)
    at_max = dataclasses.replace(ckpt, iterations=2**31 - 1)
    assert int(jk.optimizers.entries.read_iterations(io.state_from_keras(tx, params, at_max))) == 2**31 - 1


GLOBAL_CLIP_CASES = {
    "legacy": lambda: kf.L.SGD(0.1, global_clipnorm=0.1),
    "current": lambda: kf.C.SGD(0.1, global_clipnorm=0.1),
    "current_loss_scale": lambda: tf_keras.mixed_precision.LossScaleOptimizer(kf.C.SGD(0.1, global_clipnorm=0.1)),
}


@pytest.mark.parametrize("case", list(GLOBAL_CLIP_CASES))
def test_ported_global_clipnorm_sums_in_keras_order(tmp_path, case):
    """Keras sums the global norm over its trainable variables in their order (each layer's
    kernel, then its bias); a flax tree flattens the bias first.  The ported transformation
    sums in Keras's order: on the tree it steps bit for bit as the same optimizer on the list
    in Keras's order, for gradients whose norm the tree's order rounds otherwise."""
    model = kf.trained(kf.small, GLOBAL_CLIP_CASES[case])
    kind = "h5" if case == "legacy" else "keras"  # (TF-Keras saves no legacy optimizer state in a .keras)
    ckpt = io.read_keras(kf.save_all(model, str(tmp_path), kinds=(kind,))[kind])
    weights = [jnp.asarray(w) for w in model.get_weights()]  # kernel, bias, kernel, bias
    tree = lambda xs: {f"Dense_{i}": {"kernel": xs[2 * i], "bias": xs[2 * i + 1]} for i in range(2)}  # noqa: E731
    ported = io.transformation_from_keras(ckpt, tree(weights))
    factory = jk.legacy.sgd if case == "legacy" else jk.sgd
    in_keras_order, in_tree_order = factory(0.1, global_clipnorm=0.1), factory(0.1, global_clipnorm=0.1)
    rng = np.random.default_rng(0)
    for _ in range(200):  # gradients whose norm the two orders round differently
        grads = [jnp.asarray(rng.normal(size=w.shape).astype(np.float32)) for w in weights]
        if jk.global_norm(grads) != jk.global_norm(tree(grads)):
            break
    else:
        pytest.fail("no draw whose global norm depends on the order")
    theirs, _ = in_keras_order.update(grads, in_keras_order.init(weights), weights)
    ours, _ = ported.update(tree(grads), ported.init(tree(weights)), tree(weights))
    for got, want in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(tree(theirs))):
        np.testing.assert_array_equal(got, want)
    other, _ = in_tree_order.update(tree(grads), in_tree_order.init(tree(weights)), tree(weights))
    assert any(np.any(a != b) for a, b in zip(jax.tree_util.tree_leaves(other), jax.tree_util.tree_leaves(ours)))
