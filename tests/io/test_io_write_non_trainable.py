"""``write_keras`` given the whole variables tree, batch statistics included.

flax keeps a BatchNormalization's moving statistics beside the parameters
(linen's ``{"params", "batch_stats"}``, nnx's ``nnx.state(model)``); the
optimizer state was built on the parameters alone.  The statistics are
written into the model's weights and have no slots; the optimizer's weights
are those of the parameters.  The truth is TF-Keras loading the file.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tf_keras
from flax import linen as nn
from flax import nnx
from flax import struct

from jaxopt_keras import io
from jaxopt_keras.io import KerasFileError

X = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)


@pytest.fixture(scope="module", params=["h5", "keras"])
def saved(request, tmp_path_factory):
    model = tf_keras.Sequential(
        [tf_keras.Input((4,)), tf_keras.layers.Dense(3), tf_keras.layers.BatchNormalization(), tf_keras.layers.Dense(2)]
    )
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="mse")
    model.fit(X, X[:, :2], batch_size=8, verbose=0)
    path = str(tmp_path_factory.mktemp("bn") / f"m.{request.param}")
    model.save(path)
    return path


class Linen(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(3)(x)
        x = nn.BatchNorm(use_running_average=True)(x)
        return nn.Dense(2)(x)


class Nnx(nnx.Module):
    def __init__(self, rngs):
        self.dense1 = nnx.Linear(4, 3, rngs=rngs)
        self.bn = nnx.BatchNorm(3, rngs=rngs)
        self.dense2 = nnx.Linear(3, 2, rngs=rngs)


def _step(ckpt, trainable):
    """The file's optimizer over ``trainable``, one step with gradients of ones."""
    tx = io.optimizer_from_keras(ckpt).transformation
    state = io.state_from_keras(tx, trainable, ckpt)
    grads = jax.tree_util.tree_map(jnp.ones_like, trainable)
    updates, state = tx.update(grads, state, trainable)
    return tx, jax.tree_util.tree_map(jnp.add, trainable, updates), state


def _assert_loaded(path, stats, expected_slots):
    model = tf_keras.models.load_model(path)
    bn = model.layers[1]
    np.testing.assert_array_equal(bn.moving_mean.numpy(), stats["mean"])
    np.testing.assert_array_equal(bn.moving_variance.numpy(), stats["var"])
    slots = [v.numpy() for v in model.optimizer.variables]
    assert len(slots) == len(expected_slots)
    for got, want in zip(slots, expected_slots):
        np.testing.assert_array_equal(got, want)


def test_linen_variables_with_batch_stats(saved, tmp_path):
    ckpt = io.read_keras(saved)
    variables = io.params_from_keras(Linen().init(jax.random.key(0), jnp.zeros((1, 4))), ckpt)
    tx, params, state = _step(ckpt, variables["params"])
    stats = jax.tree_util.tree_map(lambda a: a + 1.0, variables["batch_stats"])
    whole = {"params": params, "batch_stats": stats}
    alone = io.write_keras(tmp_path / f"params.{ckpt.kind}", tx, params, state, like=saved)
    both = io.write_keras(tmp_path / f"whole.{ckpt.kind}", tx, whole, state, like=saved)
    # The optimizer's weights are the same either way; the statistics are ours only with them.
    expected = [v.numpy() for v in tf_keras.models.load_model(alone).optimizer.variables]
    _assert_loaded(both, {k: np.asarray(v) for k, v in stats["BatchNorm_0"].items()}, expected)
    reread = io.read_keras(both)
    kernel, gamma = ckpt.trainable[0], ckpt.trainable[2]  # dense*/kernel, batch_normalization*/gamma
    np.testing.assert_array_equal(reread.model_weights[kernel], np.asarray(params["Dense_0"]["kernel"]))
    np.testing.assert_array_equal(reread.model_weights[gamma], np.asarray(params["BatchNorm_0"]["scale"]))


def test_nnx_state_with_batch_stats(saved, tmp_path):
    ckpt = io.read_keras(saved)
    net = Nnx(nnx.Rngs(0))
    nnx.update(net, io.params_from_keras(nnx.state(net), ckpt))
    tx, params, state = _step(ckpt, nnx.state(net, nnx.Param))
    nnx.update(net, params)
    net.bn.mean.value = net.bn.mean.value + 2.0
    alone = io.write_keras(tmp_path / f"params.{ckpt.kind}", tx, nnx.state(net, nnx.Param), state, like=saved)
    both = io.write_keras(tmp_path / f"whole.{ckpt.kind}", tx, nnx.state(net), state, like=saved)
    expected = [v.numpy() for v in tf_keras.models.load_model(alone).optimizer.variables]
    _assert_loaded(both, {"mean": np.asarray(net.bn.mean.value), "var": np.asarray(net.bn.var.value)}, expected)


@struct.dataclass
class Unsorted:
    """Fields flattened in their declared order, which nested dicts would sort."""

    z: dict
    a: dict


def test_a_tree_that_cannot_be_split_by_path_is_refused(saved, tmp_path):
    ckpt = io.read_keras(saved)
    variables = io.params_from_keras(Linen().init(jax.random.key(0), jnp.zeros((1, 4))), ckpt)
    p = variables["params"]
    tx, _, state = _step(ckpt, p)
    tree = Unsorted(
        z={"Dense_0": p["Dense_0"]},
        a={"BatchNorm_0": {**p["BatchNorm_0"], **variables["batch_stats"]["BatchNorm_0"]}, "Dense_1": p["Dense_1"]},
    )
    out = tmp_path / f"out.{ckpt.kind}"
    with pytest.raises(KerasFileError, match="cannot be split by path"):
        io.write_keras(out, tx, tree, state, like=saved, names={"z/Dense_0/kernel": ckpt.trainable[0], "z/Dense_0/bias": ckpt.trainable[1]})
    assert not out.exists()
