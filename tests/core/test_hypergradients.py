"""``jax.grad`` through the step: the derivative of a loss after a few steps
with respect to the learning rate (a hypergradient, for meta-learning).

The learning rate is a value of the state (``set_hyperparams``), so the
derivative flows through every step's math; it is checked against a
central finite difference of the same function in float64.  The rate 1/8 and
the difference step 2**-12 are exact in float32, the learning rate's dtype,
so the difference quotient has only its truncation error, O(h**2): at most
7.4e-7 relative over the registry here, against a tolerance of 1e-5.  (A
gradient entry that is exactly zero, with a zero second moment, gives NaN
where ``sqrt`` is differentiated at 0, as in optax: the problem below has
none.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import registry
from jaxopt_keras.keras.factories import make_factory

LR, H = 0.125, 2.0**-12


def _factories():
    for e in registry.entries():
        for family in e.specs:
            yield pytest.param(make_factory(e, family), id=f"{family}.{e.function}")


def _loss(p):
    return jnp.sum(jnp.sin(p["kernel"]) ** 2) + jnp.sum(p["bias"] ** 2 * p["kernel"][0])


def _loss_after_steps(tx, lr):
    params = {"kernel": jnp.linspace(-1.0, 1.0, 12).reshape(4, 3) + 0.05, "bias": jnp.linspace(0.1, 0.5, 3)}
    state = jk.set_hyperparams(tx.init(params), learning_rate=lr)
    for _ in range(3):
        updates, state = tx.update(jax.grad(_loss)(params), state, params)
        params = jk.apply_updates(params, updates)
    return _loss(params)


@pytest.mark.parametrize("factory", list(_factories()))
def test_the_loss_after_steps_differentiates_by_the_learning_rate(factory):
    with jax.enable_x64(True):
        tx = factory(learning_rate=LR)
        f = jax.jit(lambda lr: _loss_after_steps(tx, lr))
        derivative = float(jax.jit(jax.grad(lambda lr: _loss_after_steps(tx, lr)))(LR))
        difference = (float(f(LR + H)) - float(f(LR - H))) / (2 * H)
    assert np.isfinite(derivative)
    assert abs(difference) > 1e-3  # the rate matters to the loss
    np.testing.assert_allclose(derivative, difference, rtol=1e-5)
