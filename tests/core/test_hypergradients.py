"""``jax.grad`` through the step: the derivative of a loss after a few steps
with respect to the learning rate (a hypergradient, for meta-learning).

The learning rate is a value of the state (``set_hyperparams``), so the
derivative flows through every step's math; it is checked against a
central finite difference of the same function in float64.  The values and
the difference step 2**-14 are exact in float32, so the difference quotient
has only its truncation error, O(h**2), which is negligible here.  The
derivative itself carries float32 rounding where Keras keeps a
hyperparameter in float32 (the learning rate; Adam's betas): measured at
most 7.4e-7 relative for the learning rate over the registry, and 6.8e-6
for the current Adam's ``beta_1``, whose derivative agrees to 7e-10 when the
state holds it in float64 instead.  The tolerance, 2e-5, covers that
rounding and would catch a path the derivative misses.  (A gradient entry
that is exactly zero, with a zero second moment, gives NaN where ``sqrt``
is differentiated at 0, as in optax: the problem below has none.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import registry
from jaxopt_keras.keras.factories import make_factory

LR, H = 0.125, 2.0**-14


def _factories():
    for e in registry.entries():
        for family in e.specs:
            yield pytest.param(make_factory(e, family), id=f"{family}.{e.function}")


def _loss(p):
    return jnp.sum(jnp.sin(p["kernel"]) ** 2) + jnp.sum(p["bias"] ** 2 * p["kernel"][0])


def _loss_after_steps(tx, lr, name="learning_rate"):
    params = {"kernel": jnp.linspace(-1.0, 1.0, 12).reshape(4, 3) + 0.05, "bias": jnp.linspace(0.1, 0.5, 3)}
    state = jk.set_hyperparams(tx.init(params), **{name: lr})
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
    np.testing.assert_allclose(derivative, difference, rtol=2e-5)


OTHERS = [
    (lambda: jk.adam(LR), "beta_1", 0.875),
    (lambda: jk.legacy.adam(LR), "beta_2", 0.875),
    (lambda: jk.legacy.sgd(LR, momentum=0.5), "momentum", 0.5),
    (lambda: jk.rmsprop(LR), "rho", 0.875),
    (lambda: jk.adam(LR), "epsilon", 0.125),
    (lambda: jk.adamw(LR, weight_decay=0.25), "weight_decay", 0.25),
    (lambda: jk.ftrl(LR), "l2_regularization_strength", 0.25),
]


@pytest.mark.parametrize("make,name,value", OTHERS, ids=[f"{n}" for _, n, _ in OTHERS])
def test_the_loss_after_steps_differentiates_by_other_hyperparameters(make, name, value):
    # Their derived values (1 - beta_1, ...) are recomputed by set_hyperparams,
    # so the derivative flows through them too.
    with jax.enable_x64(True):
        tx = make()
        f = jax.jit(lambda v: _loss_after_steps(tx, v, name))
        derivative = float(jax.jit(jax.grad(lambda v: _loss_after_steps(tx, v, name)))(value))
        difference = (float(f(value + H)) - float(f(value - H))) / (2 * H)
    assert abs(difference) > 1e-3
    np.testing.assert_allclose(derivative, difference, rtol=2e-5)
