"""Current-family Nadam's ``u_product`` restored after ``set_weights``: bounded work
at any step count, the right value (the issue's failure 3).

TF-Keras keeps ``u_product`` outside the weights list, so it is rebuilt from
the step count by multiplying the momentum schedule in order
(``nadam.u_product_loop``).  The loop used to run once per step (20 s at
``2**31 - 3``; it hung at ``2**62``) and, at ``2**63 - 3`` with x64, ran zero
times and set the product to 1.0.  The trip count is read from the loop's
carry, so these tests take no timing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from jaxopt_keras.algorithms.driver import OptimizerState
from jaxopt_keras.algorithms.nadam import u_product_loop
from jaxopt_keras.core.state import find_state

# float32 reaches exactly 0 after about 2,700 factors (each at most 0.9);
# float64 after about 7,000.  The loop may not run more than this.
MAX_TRIPS = 10_000


def sequential_u_product(beta_1: float, t: int, dtype) -> float:
    """Keras's rule, one factor per step, in NumPy: ``u_i = beta_1 * (1 - 0.5 * 0.96**i)``."""
    prod = dtype(1)
    for i in range(1, t + 1):
        prod = dtype(prod * (dtype(beta_1) * (dtype(1) - dtype(0.5) * np.power(dtype(0.96), dtype(i)))))
    return float(prod)


def u_product_of(opt) -> float:
    return float(find_state(opt.state, OptimizerState).scalars["u_product"])


def restored(t: int) -> float:
    opt = O.Nadam()
    opt.build([jk.Variable(np.ones((2,), np.float32), name="w")])
    w = opt.get_weights()
    w[0] = np.int64(t)
    opt.set_weights(w)
    return u_product_of(opt)


@pytest.mark.parametrize("t", [1, 7, 50, 300])
def test_restore_equals_the_sequential_product(t):
    np.testing.assert_allclose(restored(t), sequential_u_product(0.9, t, np.float32), rtol=1e-5)
    np.testing.assert_allclose(restored(t), sequential_u_product(0.9, t, np.float64), rtol=1e-5)


def test_restore_equals_the_uninterrupted_run():
    var = [jk.Variable(np.ones((2,), np.float32), name="w")]
    opt = O.Nadam()
    for _ in range(40):
        opt.apply_gradients(zip([np.full((2,), 0.1, np.float32)], var))
    assert restored(40) == u_product_of(opt)  # bit for bit: the same factors in the same order


@pytest.mark.parametrize("t", [5_000, 2**31 - 3, 2**31 - 1])
def test_huge_counts_take_bounded_trips_and_give_zero(t):
    prod, trips = u_product_loop(jnp.float32(0.9), jnp.asarray(t, jnp.int32), jnp.zeros([], jnp.float32))
    assert float(prod) == 0.0
    assert int(trips) <= MAX_TRIPS
    assert restored(t) == 0.0


def test_moderate_counts_multiply_every_factor():
    prod, trips = u_product_loop(jnp.float32(0.9), jnp.asarray(123, jnp.int32), jnp.zeros([], jnp.float32))
    assert int(trips) == 123
    np.testing.assert_allclose(float(prod), sequential_u_product(0.9, 123, np.float64), rtol=1e-5)


def test_beta_1_one_stops_when_the_factors_reach_one():
    prod, trips = u_product_loop(jnp.float32(1.0), jnp.asarray(2**31 - 1, jnp.int32), jnp.zeros([], jnp.float32))
    assert int(trips) <= MAX_TRIPS
    assert np.isfinite(float(prod)) and 0 < float(prod) < 1


@pytest.mark.parametrize("t", [2**62, 2**63 - 3, 2**63 - 1])
def test_x64_counts(t):
    with jax.enable_x64(True):
        for dtype in (jnp.float32, jnp.float64):
            prod, trips = u_product_loop(dtype(0.9), jnp.asarray(t, jnp.int64), jnp.zeros([], dtype))
            assert float(prod) == 0.0, (t, dtype)
            assert int(trips) <= MAX_TRIPS
        assert restored(t) == 0.0
