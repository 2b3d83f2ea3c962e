"""Zero-argument callable hyperparameters (``lambda: 0.1``): the legacy classes call
them on the host before each jitted step (no recompilation); the functional
factories refuse them with a clear error (traced once, the callable would be
frozen), while a learning rate that is a function of the step still works."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from layer_helpers import compiled_programs


def test_called_once_per_step_with_one_compilation():
    calls = []

    def lr():
        calls.append(1)
        return 0.1 * len(calls)

    opt = O.legacy.SGD(learning_rate=lr)
    v = jk.Variable(np.zeros(3, np.float32), name="v")
    for _ in range(4):
        opt.apply_gradients([(np.ones(3, np.float32), v)])
    # One call per step and none at construction, as OptimizerV2: each step used the value
    # returned just before it, -(0.1 + 0.2 + 0.3 + 0.4).
    assert len(calls) == 4
    np.testing.assert_allclose(v.numpy(), -1.0, rtol=1e-6)
    assert compiled_programs(opt) == 1


def test_assigning_a_callable_then_a_number():
    opt = O.legacy.Adam(learning_rate=0.1)
    opt.beta_1 = lambda: 0.5
    assert opt.get_config()["beta_1"] == 0.5
    opt.beta_1 = 0.7
    assert not callable(opt.get_config()["beta_1"])


def test_a_callable_returning_a_bad_value_is_refused_and_changes_nothing():
    box = {"rho": 0.9}
    opt = O.legacy.RMSprop(rho=lambda: box["rho"])
    v = jk.Variable(np.ones(2, np.float32), name="v")
    opt.apply_gradients([(np.ones(2, np.float32), v)])
    before = (v.numpy().copy(), int(opt.iterations.numpy()))
    box["rho"] = None
    with pytest.raises(TypeError, match="rho"):  # what the constructor raises for rho=None
        opt.apply_gradients([(np.ones(2, np.float32), v)])
    assert np.array_equal(v.numpy(), before[0]) and int(opt.iterations.numpy()) == before[1]


@pytest.mark.parametrize("make", [lambda: jk.legacy.rmsprop(rho=lambda: 0.9), lambda: jk.legacy.sgd(lambda: 0.1)])
def test_factories_refuse_zero_argument_callables(make):
    with pytest.raises(TypeError, match="zero-argument callable.*set_hyperparams"):
        make()


def test_factories_keep_learning_rates_of_the_step():
    tx = jk.legacy.sgd(learning_rate=lambda step: 1.0 / (step + 1))
    params = [jnp.zeros(2)]
    state = tx.init(params)
    deltas = []
    for _ in range(3):
        u, state = jax.jit(tx.update)([jnp.ones(2)], state, params)
        deltas.append(float(u[0][0]))
    np.testing.assert_allclose(deltas, [-1.0, -0.5, -1 / 3], rtol=1e-6)
