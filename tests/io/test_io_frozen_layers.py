"""A model with a layer frozen by ``trainable=False``: the tree the optimizer updates pairs the same
way in ``params_from_keras``, ``state_from_keras`` and ``write_keras``.

``Dense(4)`` (frozen) -> ``Dense(4)`` -> ``Dense(4)`` on 4 inputs: every kernel is 4x4, so a leaf
paired with the wrong layer has the right shape.  The optimizer has slots for the two trainable
layers; the flax tree it updates holds those two (``Dense_1``, ``Dense_2`` of the whole model).
``state_from_keras`` paired that tree with Keras's trainable layers, while ``params_from_keras`` and
``write_keras`` paired it among all the layers, the frozen one first: the port started from the
frozen layer's weights, and ``write_keras`` refused the tree.  The truth is TF-Keras's model.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import tf_keras

from jaxopt_keras import io
from jaxopt_keras.io import KerasFileError


@pytest.fixture(scope="module", params=[("legacy", "h5"), ("current", "h5"), ("current", "keras")], ids="-".join)
def saved(request, tmp_path_factory):
    family, kind = request.param
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.Input((4,))] + [tf_keras.layers.Dense(4, activation="tanh") for _ in range(3)])
    model.layers[0].trainable = False
    make = tf_keras.optimizers.legacy.Adam if family == "legacy" else tf_keras.optimizers.Adam
    model.compile(optimizer=make(0.01), loss="mse")
    rng = np.random.default_rng(0)
    for _ in range(3):
        model.train_on_batch(rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal((8, 4)).astype(np.float32))
    path = str(tmp_path_factory.mktemp("frozen") / f"m.{kind}")
    model.save(path)
    optimizer = model.optimizer.get_weights() if family == "legacy" else [v.numpy() for v in model.optimizer.variables]
    return path, [(layer.kernel.numpy(), layer.bias.numpy()) for layer in model.layers], optimizer


def _zeros(*names):
    return {name: {"kernel": jnp.zeros((4, 4)), "bias": jnp.zeros(4)} for name in names}


def test_the_trainable_tree_holds_the_trainable_layers(saved):
    path, layers, _ = saved
    params = io.params_from_keras(_zeros("Dense_1", "Dense_2"), io.read_keras(path))
    for name, (kernel, bias) in zip(("Dense_1", "Dense_2"), layers[1:]):
        np.testing.assert_array_equal(params[name]["kernel"], kernel)
        np.testing.assert_array_equal(params[name]["bias"], bias)


@pytest.mark.parametrize("whole", [False, True], ids=["trainable tree", "whole tree"])
def test_written_back_unchanged_keras_loads_the_same_model(saved, tmp_path, whole):
    path, layers, optimizer = saved
    ckpt = io.read_keras(path)
    tx = io.optimizer_from_keras(ckpt).transformation
    params = io.params_from_keras(_zeros("Dense_1", "Dense_2"), ckpt)
    state = io.state_from_keras(tx, params, ckpt)
    tree = {**io.params_from_keras(_zeros("Dense_0"), ckpt), **params} if whole else params
    back = io.write_keras(str(tmp_path / f"back.{ckpt.kind}"), tx, tree, state, like=path)
    model = tf_keras.models.load_model(back)
    for layer, (kernel, bias) in zip(model.layers, layers):
        np.testing.assert_array_equal(layer.kernel.numpy(), kernel)
        np.testing.assert_array_equal(layer.bias.numpy(), bias)
    reloaded = model.optimizer.get_weights() if ckpt.family == "legacy" else [v.numpy() for v in model.optimizer.variables]
    assert len(reloaded) == len(optimizer)
    for ours, theirs in zip(reloaded, optimizer):
        np.testing.assert_array_equal(ours, theirs)


def test_a_state_over_the_frozen_layer_is_refused_naming_it(saved):
    path, _, _ = saved
    ckpt = io.read_keras(path)
    params = io.params_from_keras(_zeros("Dense_0", "Dense_1", "Dense_2"), ckpt)
    tx = io.optimizer_from_keras(ckpt).transformation
    with pytest.raises(KerasFileError, match=r"not trainable .*\['Dense_0/bias -> dense/bias', 'Dense_0/kernel -> dense/kernel'\]"):
        io.state_from_keras(tx, params, ckpt)
