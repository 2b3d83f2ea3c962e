"""Lamb (Keras 3 only): what Keras 3's own ``lamb_test.py`` checks, and its trust ratio."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras.algorithms.lamb import trust_ratio
from jaxopt_keras.optimizers import keras3 as K3


def test_single_step():
    var = jk.Variable([1.0, 2.0, 3.0, 4.0], name="v")
    K3.Lamb(learning_rate=0.5).apply_gradients([(jnp.asarray([1.0, 6.0, 7.0, 2.0]), var)])
    np.testing.assert_allclose(var.numpy(), [-0.3693, 0.6306, 1.6306, 2.6306], rtol=1e-4, atol=1e-4)


def test_correctness_with_golden():
    x = jk.Variable(np.ones(10, np.float32), name="x")
    opt = K3.Lamb()
    golden = np.tile([[0.999], [0.9982], [0.9974], [0.9965], [0.9955]], (1, 10))
    opt.apply_gradients([(jnp.full((10,), 0.01), x)])
    for i in range(5):
        np.testing.assert_allclose(x.numpy(), golden[i], rtol=5e-4, atol=5e-4)
        opt.apply_gradients([(jnp.arange(0.1, 1.1, 0.1), x)])


def test_weight_decay_and_its_exclusions():
    grads = jnp.zeros(())
    var1, var2, var3 = jk.Variable(2.0, name="v1"), jk.Variable(2.0, name="exclude"), jk.Variable(2.0, name="v3")
    K3.Lamb(learning_rate=1.0, weight_decay=0.004).apply_gradients([(grads, var1)])
    opt2 = K3.Lamb(learning_rate=1.0, weight_decay=0.004)
    opt2.exclude_from_weight_decay(var_names=["exclude"])
    opt2.apply_gradients([(grads, var1), (grads, var2)])
    opt3 = K3.Lamb(learning_rate=1.0, weight_decay=0.004)
    opt3.exclude_from_weight_decay(var_list=[var3])
    opt3.apply_gradients([(grads, var1), (grads, var3)])
    assert var1.numpy() == pytest.approx(1.9760959, abs=1e-6)
    assert var2.numpy() == 2.0 and var3.numpy() == 2.0


def test_the_trust_ratio_is_whole_tensor_norms_or_one():
    p, u = jnp.asarray([[3.0, 0.0], [0.0, 4.0]]), jnp.asarray([[1.0, 0.0], [0.0, 0.0]])
    assert float(trust_ratio(p, u)) == 5.0
    assert float(trust_ratio(jnp.zeros((2, 2)), u)) == 1.0  # ||w|| = 0
    assert float(trust_ratio(p, jnp.zeros((2, 2)))) == 1.0  # ||update|| = 0


def test_squares_are_integer_powers_as_in_keras3():
    """Keras 3's ``ops.power(x, 2)`` is ``integer_pow`` (``x * x``) under XLA, not ``pow``."""
    jaxpr = str(jax.make_jaxpr(trust_ratio)(jnp.ones(3), jnp.ones(3)))
    assert "integer_pow" in jaxpr and " pow" not in jaxpr


def test_a_zero_parameter_takes_the_plain_adam_direction():
    # ratio 1: the first step is lr * m_hat / (sqrt(v_hat) + eps) = lr * sign(g) (nearly).
    opt = jk.keras3.lamb(learning_rate=0.1)
    params = {"w": jnp.zeros(3)}
    updates, _ = opt.update({"w": jnp.asarray([1.0, -2.0, 0.0])}, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.1, 0.1, 0.0], rtol=1e-5)


def test_the_variables_list_interleaves_momentum_and_velocity():
    vs = [jk.Variable(np.ones((2, 3)), name="dense/kernel"), jk.Variable(np.ones(3), name="dense/bias")]
    opt = K3.Lamb(name="lamb")
    opt.build(vs)
    assert [v.path for v in opt.variables] == [
        "lamb/iteration", "lamb/learning_rate",
        "lamb/dense_kernel_momentum", "lamb/dense_kernel_velocity",
        "lamb/dense_bias_momentum", "lamb/dense_bias_velocity",
    ]  # fmt: skip


def test_config_round_trip():
    opt = K3.Lamb(learning_rate=0.5, beta_1=0.5, beta_2=0.67, epsilon=1e-5)
    config = opt.get_config()
    assert list(config)[-3:] == ["beta_1", "beta_2", "epsilon"]
    assert K3.Lamb.from_config(config).get_config() == config


def test_the_flat_layout_is_refused():
    params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
    flat, _ = jk.flat.ravel(params)
    opt = jk.keras3.lamb()
    with pytest.raises(ValueError, match="cannot run on the flat layout"):
        opt.update(flat, opt.init(flat), flat)


def test_keras3_argument_errors():
    with pytest.raises(ValueError, match="Argument `learning_rate` should be float"):
        K3.Lamb(learning_rate=1)
    with pytest.raises(ValueError, match="Argument\\(s\\) not recognized"):
        K3.Lamb(amsgrad=True)
    with pytest.raises(ValueError, match="Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
        jk.keras3.lamb(clipnorm=1.0, clipvalue=1.0)
