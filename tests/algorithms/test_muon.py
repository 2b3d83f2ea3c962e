"""Muon (Keras 3 only): what Keras 3's own ``muon_test.py`` checks, its routing
per variable (by path and rank) and its two weight-decay rates."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras.algorithms.muon import lr_adjust, should_use_adamw, zeropower_via_newtonschulz5
from jaxopt_keras.optimizers import keras3 as K3


def test_newton_schulz():
    x = jnp.asarray([[0.2499, 0.9105], [0.2655, 0.8824]])
    np.testing.assert_allclose(zeropower_via_newtonschulz5(x, 5), [[-0.4422, 0.6457], [0.7285, 0.2968]], rtol=1e-3, atol=1e-3)


def test_newton_schulz_of_a_tall_matrix_is_the_transpose_of_the_wide_one():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((5, 3)), jnp.float32)
    np.testing.assert_array_equal(zeropower_via_newtonschulz5(x, 5), zeropower_via_newtonschulz5(x.T, 5).T)


def test_newton_schulz_needs_two_dimensions():
    with pytest.raises(ValueError, match=r"Expected gradient or momentum to have at least 2 dimensions. Received: shape=\(3,\)"):
        zeropower_via_newtonschulz5(jnp.ones(3), 5)


@pytest.mark.parametrize(
    "path,shape,exclude_layers,exclude_embeddings,adamw",
    [
        ("variable", (2, 2), ["var"], True, True),  # Keras 3's test: a regex of exclude_layers
        ("embedding/embeddings", (2, 2), [], True, True),  # an Embedding's weight
        ("dense/kernel", (2, 2), [], True, False),  # a Dense kernel: Muon
        ("variable", (2, 2), [], True, False),
        ("encoder/Embedding_proj/kernel", (4, 4), [], True, True),  # any case, any part of the path
        ("embedding/embeddings", (2, 2), [], False, False),
        ("dense/bias", (2,), [], False, True),  # not 2-D
        ("conv/kernel", (3, 3, 4), [], False, True),
        ("scale", (), [], False, True),
        ("output_dense/kernel", (4, 2), ["^output"], False, True),
        ("dense/kernel", (4, 2), ["^output"], False, False),
    ],
)
def test_should_use_adamw(path, shape, exclude_layers, exclude_embeddings, adamw):
    assert should_use_adamw(path, shape, exclude_layers, exclude_embeddings) is adamw


def test_lr_adjust():
    x = jnp.ones((4, 4))
    np.testing.assert_array_equal(lr_adjust(x, None), x)
    np.testing.assert_allclose(lr_adjust(jnp.ones((4, 2)), 0.2), jnp.ones((4, 2)) * 0.2 * 2)


def test_adamw_single_step():
    var = jk.Variable([1.0, 2.0, 3.0, 4.0], name="test_vars")
    K3.Muon(learning_rate=0.5, adam_weight_decay=None).apply_gradients([(jnp.asarray([1.0, 6.0, 7.0, 2.0]), var)])
    np.testing.assert_allclose(var.numpy(), [0.5, 1.5, 2.5, 3.5], rtol=1e-4, atol=1e-4)


def test_muon_single_step():
    var = jk.Variable([[1.0, 2.0], [3.0, 4.0]], name="dense/kernel")
    K3.Muon(learning_rate=0.5, weight_decay=0).apply_gradients([(jnp.asarray([[1.0, 6.0], [7.0, 2.0]]), var)])
    np.testing.assert_allclose(var.numpy(), [[0.988775, 1.887053], [2.873428, 3.97035]], rtol=1e-2, atol=1e-2)


def test_each_path_decays_at_its_own_rate():
    """``weight_decay`` for the Muon path, ``adam_weight_decay`` for the AdamW path, both
    at the learning rate (without ``adam_lr_ratio``); zero gradients leave only the decay."""
    matrix, scalar = jk.Variable([[1.0, 2.0], [3.0, 4.0]], name="dense/kernel"), jk.Variable(2.0, name="scale")
    opt = K3.Muon(learning_rate=1.0, weight_decay=0.01, adam_weight_decay=0.02, adam_lr_ratio=0.5)
    opt.apply_gradients([(jnp.zeros((2, 2)), matrix), (jnp.zeros(()), scalar)])
    np.testing.assert_allclose(matrix.numpy(), np.float32([[1.0, 2.0], [3.0, 4.0]]) * np.float32(0.99), rtol=1e-6)
    assert scalar.numpy() == pytest.approx(2.0 - 2.0 * 0.02, abs=1e-6)


def test_weight_decay_none_leaves_the_adamw_rate():
    matrix, scalar = jk.Variable(np.ones((2, 2)), name="dense/kernel"), jk.Variable(2.0, name="scale")
    opt = K3.Muon(learning_rate=1.0, weight_decay=None, adam_weight_decay=0.01)
    opt.apply_gradients([(jnp.zeros((2, 2)), matrix), (jnp.zeros(()), scalar)])
    np.testing.assert_array_equal(matrix.numpy(), np.ones((2, 2)))
    assert scalar.numpy() == pytest.approx(1.98, abs=1e-6)
    excluded = jk.Variable(2.0, name="exclude")
    opt = K3.Muon(learning_rate=1.0, adam_weight_decay=0.01)
    opt.exclude_from_weight_decay(var_names=["exclude"])
    opt.apply_gradients([(jnp.zeros(()), excluded)])
    assert excluded.numpy() == 2.0


def _model():
    return [
        jk.Variable(np.ones((6, 4), np.float32), name="embedding/embeddings"),
        jk.Variable(np.ones((4, 3), np.float32) * 0.5, name="dense/kernel"),
        jk.Variable(np.ones(3, np.float32), name="dense/bias"),
        jk.Variable(np.ones((3, 1), np.float32), name="output/kernel"),
    ]


def test_the_variables_list_has_velocity_only_on_the_adamw_path():
    opt = K3.Muon(name="muon", exclude_layers=["output"])
    opt.build(_model())
    assert [v.path for v in opt.variables] == [
        "muon/iteration", "muon/learning_rate",
        "muon/embedding_embeddings_momentum", "muon/embedding_embeddings_velocity",
        "muon/dense_kernel_momentum",
        "muon/dense_bias_momentum", "muon/dense_bias_velocity",
        "muon/output_kernel_momentum", "muon/output_kernel_velocity",
    ]  # fmt: skip
    kernel = opt._variables[1]
    assert opt.get_slot(kernel, "m").path == "muon/dense_kernel_momentum"
    with pytest.raises(KeyError, match="dense/kernel"):
        opt.get_slot(kernel, "v")


def test_weights_round_trip_with_routed_slots():
    vs = _model()
    opt = K3.Muon(exclude_embeddings=False)
    opt.build(vs)
    for _ in range(2):
        opt.apply_gradients([(jnp.full(v.shape, 0.1), v) for v in vs])
    weights = opt.get_weights()
    again = K3.Muon(exclude_embeddings=False)
    again.build(_model())
    again.set_weights(weights)
    for a, b in zip(again.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


def test_the_functional_form_routes_by_the_keys_of_the_tree():
    params = {
        "encoder": {"embedding": {"embeddings": jnp.ones((6, 4))}, "dense": {"kernel": jnp.ones((4, 3)), "bias": jnp.ones(3)}},
        "head": {"kernel": jnp.ones((3, 2))},
    }
    state = jk.keras3.muon(exclude_layers=["^head"]).init(params)
    has_velocity = jax.tree.map(lambda v: v is not None, state.slots.v, is_leaf=lambda v: v is None)
    assert has_velocity == {
        "encoder": {"embedding": {"embeddings": True}, "dense": {"kernel": False, "bias": True}},
        "head": {"kernel": True},
    }


def test_paths_override_the_keys_and_must_fit_the_tree():
    params = [jnp.ones((4, 3)), jnp.ones((6, 4))]
    state = jk.keras3.muon(paths=["dense/kernel", "token_embedding"]).init(params)
    assert state.slots.v[0] is None and state.slots.v[1] is not None
    state = jk.keras3.muon(paths=lambda p: ["a", "b"]).init(params)
    assert state.slots.v == [None, None]
    with pytest.raises(ValueError, match="shaped like the parameters"):
        jk.keras3.muon(paths={"a": "b"}).init(params)
    with pytest.raises(ValueError, match="`paths` gives the parameter at '0' the path 7: a variable's path is a string"):
        jk.keras3.muon(paths=[7, "b"]).init(params)


def test_a_variable_its_state_cannot_step_is_named():
    """A state built for other paths (here the matrix took the Muon path, without
    velocity) cannot step a variable that now takes the AdamW path."""
    params = [jnp.ones((4, 3)), jnp.ones((6, 4))]
    state = jk.keras3.muon(paths=["dense/kernel", "table"]).init(params)
    with pytest.raises(ValueError, match="Muon cannot step the variable 'embedding' of shape \\(6, 4\\): its state has no \\['velocity'\\]"):
        jk.keras3.muon(paths=["dense/kernel", "embedding"]).update(params, state, params)


def test_functional_and_class_agree():
    vs = _model()
    grads = [jnp.full(v.shape, 0.1) * (i + 1) for i, v in enumerate(vs)]
    params = [v.value for v in vs]
    opt = jk.keras3.muon(learning_rate=0.01, exclude_layers=["output"], paths=[v.path for v in vs])
    state = opt.init(params)
    for _ in range(3):
        updates, state = opt.update(grads, state, params)
        params = jk.apply_updates(params, updates)
    layer = K3.Muon(learning_rate=0.01, exclude_layers=["output"])
    for _ in range(3):
        layer.apply_gradients(zip(grads, vs))
    for p, v in zip(params, vs):
        np.testing.assert_allclose(p, v.numpy(), rtol=1e-6, atol=1e-7)


def test_the_layers_transformation_routes_the_variables_list_only():
    """The layer's transformation routes by its variables' paths, one per variable
    in build order: on that list it steps as the layer does; on a tree of another
    structure (a ported flax tree) it names the paths it holds and the way out,
    not a `paths` argument the user never passed."""
    vs = _model()
    opt = K3.Muon(learning_rate=0.01, exclude_layers=["output"])
    opt.build(vs)
    t = opt.transformation
    values = [np.asarray(v.value) for v in vs]  # copies: the layer's step donates its buffers
    grads = [jnp.full(v.shape, 0.1) for v in vs]
    updates, _ = t.update(grads, t.init(values), values)
    opt.apply_gradients(zip(grads, vs))
    for value, u, v in zip(values, updates, vs):
        np.testing.assert_allclose(value + u, v.numpy(), rtol=1e-6, atol=1e-7)
    tree = {v.path: value for v, value in zip(vs, values)}
    with pytest.raises(ValueError, match=rf"Muon routes each variable by its path.*the {len(vs)} variables it was built "
                       r"with.*run it on a list of their values.*jaxopt_keras\.keras3\.muon\(\.\.\., paths=\.\.\.\)"):
        t.init(tree)


def test_signature_and_config_follow_keras3():
    params = list(inspect.signature(K3.Muon).parameters)
    assert params[:16] == [
        "learning_rate", "adam_beta_1", "adam_beta_2", "adam_weight_decay", "epsilon", "weight_decay",
        "clipnorm", "clipvalue", "global_clipnorm", "use_ema", "ema_momentum", "ema_overwrite_frequency",
        "loss_scale_factor", "gradient_accumulation_steps", "name", "exclude_layers",
    ]  # fmt: skip
    assert "paths" not in params and "paths" in inspect.signature(jk.keras3.muon).parameters
    config = K3.Muon(learning_rate=0.5, epsilon=1e-5).get_config()
    assert list(config)[11:] == [
        "adam_beta_1", "adam_beta_2", "epsilon", "exclude_layers", "muon_a", "muon_b", "muon_c",
        "adam_lr_ratio", "momentum", "ns_steps", "nesterov", "exclude_embeddings", "adam_weight_decay", "rms_rate",
    ]  # fmt: skip
    assert config["exclude_layers"] == [] and config["adam_lr_ratio"] == 1 and config["weight_decay"] == 0.004
    assert K3.Muon.from_config(config).get_config() == config


def test_the_flat_layout_is_refused():
    flat, _ = jk.flat.ravel({"w": jnp.ones((2, 3))})
    opt = jk.keras3.muon()
    with pytest.raises(ValueError, match="cannot run on the flat layout"):
        opt.update(flat, opt.init(flat), flat)


def test_keras3_argument_errors():
    with pytest.raises(ValueError, match="Argument\\(s\\) not recognized: \\{'paths'"):
        K3.Muon(paths=["a"])  # a functional argument: the class routes by `Variable.path`
    with pytest.raises(ValueError, match="Argument `learning_rate` should be float"):
        K3.Muon(learning_rate=1)
