"""Schedule-Free AdamW (Keras 3 only): what Keras 3's own test checks, and the
sequences as Keras 3 stores them (the variable holds y, ``momentum`` is z)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras.optimizers import keras3 as K3


def _reference(p, grads, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8, warmup_steps=0):
    """The paper's y/z/x in float64, as Keras 3 orders them, with its betas cast to
    float32 first (``1 - ops.cast(beta_2, dtype)`` is 0.0009999871, not 0.001)."""
    beta_1, beta_2 = float(np.float32(beta_1)), float(np.float32(beta_2))
    y, z, v = np.float64(p), np.float64(p), np.zeros_like(np.float64(p))
    for t, g in enumerate(grads, start=1):
        lr_t = lr * min(t / warmup_steps, 1.0) if warmup_steps > 0 else lr
        v = beta_2 * v + (1 - beta_2) * g**2
        z_new = z - lr_t * g / (np.sqrt(v / (1 - beta_2**t)) + epsilon)
        x = (y - (1 - beta_1) * z) / beta_1
        x = (1 - 1 / t) * x + z_new / t
        y, z = (1 - beta_1) * z_new + beta_1 * x, z_new
    return y, z, v


def test_single_step_changes_the_variable():
    var = jk.Variable([1.0, 2.0, 3.0, 4.0], name="v")
    K3.ScheduleFreeAdamW(learning_rate=0.5).apply_gradients([(jnp.asarray([1.0, 6.0, 7.0, 2.0]), var)])
    assert not np.allclose(var.numpy(), [1.0, 2.0, 3.0, 4.0], rtol=1e-4, atol=1e-4)


def test_warmup_gives_a_smaller_first_update():
    var1, var2 = jk.Variable([1.0, 2.0, 3.0], name="a"), jk.Variable([1.0, 2.0, 3.0], name="b")
    K3.ScheduleFreeAdamW(learning_rate=0.5, warmup_steps=0).apply_gradients([(jnp.ones(3), var1)])
    K3.ScheduleFreeAdamW(learning_rate=0.5, warmup_steps=10).apply_gradients([(jnp.ones(3), var2)])
    assert np.all(np.abs(var2.numpy() - [1, 2, 3]) < np.abs(var1.numpy() - [1, 2, 3]))


def test_multiple_steps_decrease_the_parameters():
    var = jk.Variable([1.0, 2.0, 3.0], name="v")
    opt = K3.ScheduleFreeAdamW(learning_rate=0.01)
    for _ in range(10):
        opt.apply_gradients([(jnp.full(3, 0.1), var)])
    assert np.all(var.numpy() < [1.0, 2.0, 3.0])


def test_weight_decay_exclusion():
    grads, var1, var2 = jnp.zeros(()), jk.Variable(2.0, name="v1"), jk.Variable(2.0, name="exclude")
    opt = K3.ScheduleFreeAdamW(learning_rate=1.0, weight_decay=0.004)
    opt.exclude_from_weight_decay(var_names=["exclude"])
    opt.apply_gradients([(grads, var1), (grads, var2)])
    # Step 1 averages x with weight 1/t = 1: y becomes z, which decay does not touch.
    assert var1.numpy() == 2.0 and var2.numpy() == 2.0
    opt.apply_gradients([(grads, var1), (grads, var2)])
    assert var1.numpy() == pytest.approx(1.996, abs=1e-6) and var2.numpy() == 2.0


@pytest.mark.parametrize("warmup_steps", [0, 3])
def test_the_variable_holds_y_and_momentum_holds_z(warmup_steps):
    p0 = np.asarray([0.5, -1.0, 2.0], np.float32)
    grads = [np.asarray([0.3, -0.2, 0.1], np.float32) * k for k in (1.0, 2.0, -1.0, 0.5)]
    var = jk.Variable(p0, name="w")
    opt = K3.ScheduleFreeAdamW(learning_rate=0.1, warmup_steps=warmup_steps)
    opt.build([var])
    np.testing.assert_array_equal(opt.get_slot(var, "z").numpy(), p0)  # z starts at a copy of the parameter
    for g in grads:
        opt.apply_gradients([(jnp.asarray(g), var)])
    y, z, v = _reference(p0, grads, 0.1, warmup_steps=warmup_steps)
    assert [w.path for w in opt.variables][2:] == [f"{opt.name}/w_momentum", f"{opt.name}/w_velocity"]
    for ours, ref in zip((var, opt.variables[2], opt.variables[3]), (y, z, v)):
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5)


def test_the_flat_layout_computes_the_same_steps():
    params = {"w": jnp.asarray([[0.5, -1.0], [2.0, 0.1]]), "b": jnp.asarray([0.3, -0.7])}
    grads = {"w": jnp.asarray([[0.1, 0.2], [-0.3, 0.4]]), "b": jnp.asarray([1.0, -1.0])}
    opt = jk.keras3.schedule_free_adamw(learning_rate=0.05, warmup_steps=2)
    flat, layout = jk.flat.ravel(params)
    tree_state, flat_state = opt.init(params), opt.init(flat)
    for _ in range(3):
        u, tree_state = opt.update(grads, tree_state, params)
        params = jk.apply_updates(params, u)
        fu, flat_state = opt.update(layout.ravel(grads), flat_state, flat)
        flat = jk.apply_updates(flat, fu)
    np.testing.assert_array_equal(layout.ravel(params).buffers[0], flat.buffers[0])


def test_beta_1_is_a_constant_of_the_step_and_setting_it_recompiles():
    var = jk.Variable([1.0, 2.0], name="v")
    opt = K3.ScheduleFreeAdamW(learning_rate=0.1)
    assert "beta_1" not in jk.get_hyperparams(opt.state)
    opt.beta_1 = 0.5
    assert opt.beta_1 == 0.5 and opt.get_config()["beta_1"] == 0.5
    opt.apply_gradients([(jnp.asarray([1.0, 1.0]), var)])
    y, _, _ = _reference(np.float32([1.0, 2.0]), [np.float32([1.0, 1.0])], 0.1, beta_1=0.5)
    np.testing.assert_allclose(var.numpy(), y, rtol=1e-5)


def test_config_round_trip():
    opt = K3.ScheduleFreeAdamW(learning_rate=0.005, beta_1=0.95, beta_2=0.99, epsilon=1e-6, warmup_steps=100)
    config = opt.get_config()
    assert list(config)[-4:] == ["beta_1", "beta_2", "epsilon", "warmup_steps"]
    assert config["warmup_steps"] == 100 and config["learning_rate"] == pytest.approx(0.005)
    assert K3.ScheduleFreeAdamW.from_config(config).get_config() == config


def test_keras3_argument_errors():
    with pytest.raises(ValueError, match="Argument `learning_rate` should be float"):
        K3.ScheduleFreeAdamW(learning_rate=1)
    with pytest.raises(ValueError, match="Argument\\(s\\) not recognized"):
        jk.keras3.schedule_free_adamw(momentum=0.9)
    with pytest.raises(ValueError, match="weight decay reads the parameter values"):
        opt = jk.keras3.schedule_free_adamw(weight_decay=0.1)
        opt.update([jnp.ones(2)], opt.init([jnp.ones(2)]))
