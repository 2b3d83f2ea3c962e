"""``minimize`` with a non-scalar loss differentiates its sum, as TF-Keras's
``tape.gradient`` does (the issue's failure 8: it raised "Gradient only defined
for scalar-output functions")."""

from __future__ import annotations

import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import mixed_precision
from jaxopt_keras import optimizers as O


@pytest.mark.parametrize("cls", [O.legacy.SGD, O.SGD])
@pytest.mark.parametrize("takes_values", [False, True])
def test_a_vector_loss_steps_along_the_gradient_of_its_sum(cls, takes_values):
    x = np.array([1.0, 2.0, -3.0], np.float32)
    w = jk.Variable(np.array([0.5, -1.0, 2.0], np.float32), name="w")
    b = jk.Variable(np.float32(0.25), name="b")
    opt = cls(learning_rate=0.1)
    # loss_i = w_i * x_i + b**2: d(sum loss)/dw = x, d(sum loss)/db = 3 * 2b
    if takes_values:
        loss = lambda values: values[0] * x + values[1] ** 2  # noqa: E731
    else:
        loss = lambda: w.value * x + b.value ** 2  # noqa: E731
    value = opt.minimize(loss, [w, b])
    np.testing.assert_allclose(np.asarray(value), [0.5 + 0.0625, -2.0 + 0.0625, -6.0 + 0.0625], rtol=1e-6)
    np.testing.assert_allclose(w.numpy(), [0.5 - 0.1, -1.0 - 0.2, 2.0 + 0.3], rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), 0.25 - 0.1 * 3 * 2 * 0.25, rtol=1e-6)


def test_compute_gradients_of_a_matrix_loss():
    w = jk.Variable(np.ones((2, 2), np.float32), name="w")
    pairs = O.Adam().compute_gradients(lambda: w.value * np.arange(4.0, dtype=np.float32).reshape(2, 2), [w])
    np.testing.assert_array_equal(np.asarray(pairs[0][0]), np.arange(4.0).reshape(2, 2))


def test_the_loss_scale_optimizer_too():
    w = jk.Variable(np.array([1.0, 2.0], np.float32), name="w")
    opt = mixed_precision.LossScaleOptimizer(O.SGD(0.5), dynamic=False, initial_scale=8.0)
    value = opt.minimize(lambda: w.value * np.float32(3.0), [w])
    np.testing.assert_array_equal(np.asarray(value), [3.0, 6.0])
    np.testing.assert_array_equal(w.numpy(), [1.0 - 1.5, 2.0 - 1.5])
