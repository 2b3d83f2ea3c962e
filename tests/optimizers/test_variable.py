"""``jaxopt_keras.Variable`` (``optimizers/variable.py``), the counterpart of
``tf.Variable``: reading, arithmetic, ``assign``, and buffers of its own."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O


def test_variable_reading():
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    v = jk.Variable(data, name="dense/kernel")
    assert v.name == "dense/kernel:0"
    assert jk.Variable(1.0).name == "Variable:0"  # TensorFlow's default name
    assert jk.Variable(1.0, name="w:0").name == "w:0"  # no second suffix
    assert v.shape == (2, 3) and isinstance(v.shape, tuple)
    assert v.dtype == np.float32
    assert isinstance(v.value, jax.Array)
    out = v.numpy()
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, data)
    out[0, 0] = 100.0  # a copy: the variable does not change
    assert float(v.value[0, 0]) == 0.0
    np.testing.assert_array_equal(np.asarray(v), data)
    assert np.asarray(v, dtype=np.float64).dtype == np.float64
    assert np.array(v).shape == (2, 3)
    # dtype: as given, or inferred (float32 / int32 without x64), or converted.
    assert jk.Variable([1, 2]).dtype == jax.dtypes.canonicalize_dtype(np.int64)
    assert jk.Variable([1, 2], dtype=jnp.float32).dtype == np.float32
    assert jk.Variable(np.ones(2, np.float16)).dtype == np.float16
    assert float(jk.Variable(2.5)) == 2.5 and int(jk.Variable(7)) == 7
    assert "dense/kernel:0" in repr(v)


def test_variable_arithmetic_stands_in_for_its_value():
    a = jk.Variable(np.array([1.0, 2.0, 4.0], np.float32), name="a")
    b = jk.Variable(np.array([2.0, 2.0, 2.0], np.float32), name="b")
    x, y = np.array([1.0, 2.0, 4.0], np.float32), np.full(3, 2.0, np.float32)
    for got, want in [
        (a + 1, x + 1),
        (1 + a, 1 + x),
        (a - b, x - y),
        (10 - a, 10 - x),
        (a * b, x * y),
        (3 * a, 3 * x),
        (a / b, x / y),
        (8 / a, 8 / x),
        (a**2, x**2),
        (-a, -x),
        (a @ b, x @ y),
        (a[1:], x[1:]),
        (a < b, x < y),
        (a >= b, x >= y),
        (x + a, x + x),
        (y @ a, y @ x),
        (jnp.asarray(a), x),
        (jnp.sum(a.value), x.sum()),
    ]:
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    # NumPy on the left defers to the Variable (JAX ops), so a Keras-style loss
    # mixing NumPy data and Variables can be differentiated.
    assert isinstance(y @ a, jax.Array) and isinstance(np.float32(2) * a, jax.Array)

    def loss(value):
        a._value = value  # what minimize does while it takes the gradient
        return (y @ a) * 1.0

    saved = a.value
    np.testing.assert_array_equal(np.asarray(jax.grad(loss)(saved)), y)
    a._value = saved


def test_variable_assign_keeps_shape_and_dtype():
    v = jk.Variable(np.zeros((2, 2), np.float32), name="v")
    assert v.assign(np.full((2, 2), 0.1, np.float64)) is v
    assert v.dtype == np.float32  # converted to the variable's dtype, never changed
    np.testing.assert_array_equal(v.numpy(), np.full((2, 2), np.float32(0.1)))
    v.assign([[1, 2], [3, 4]])  # Python ints into a float variable
    assert v.dtype == np.float32
    np.testing.assert_array_equal(v.numpy(), [[1.0, 2.0], [3.0, 4.0]])
    i = jk.Variable(np.array([1, 2], np.int32))
    i.assign(np.array([3.0, 4.0]))
    assert i.dtype == np.int32 and i.numpy().tolist() == [3, 4]
    with pytest.raises(ValueError, match=r"Shape mismatch.*\(2, 2\).*\(3,\)"):
        v.assign(np.zeros(3))
    with pytest.raises(ValueError, match="Shape mismatch"):
        v.assign(np.zeros((2, 2, 1)))
    np.testing.assert_array_equal(v.numpy(), [[1.0, 2.0], [3.0, 4.0]])  # unchanged by the failures
    v.assign_add(np.ones((2, 2)))
    v.assign_sub(np.full((2, 2), 0.5))
    np.testing.assert_array_equal(v.numpy(), [[1.5, 2.5], [3.5, 4.5]])
    w = jk.Variable(np.zeros((2, 2), np.float32))
    w.assign(v)  # a Variable is a value too
    np.testing.assert_array_equal(w.numpy(), v.numpy())


def test_variables_own_their_buffers():
    """The optimizer donates variable buffers; a caller's array, or two variables
    built from one array, must survive that (tf.Variable copies too)."""
    x = jnp.ones(3)
    v1, v2 = jk.Variable(x, name="v1"), jk.Variable(x, name="v2")
    v3 = jk.Variable(np.zeros(3, np.float32), name="v3")
    v3.assign(v1.value)
    opt = O.SGD(learning_rate=0.5)
    opt.apply_gradients([(jnp.ones(3), v1), (jnp.ones(3), v2), (jnp.ones(3), v3)])
    assert not x.is_deleted()
    np.testing.assert_array_equal(np.asarray(x), np.ones(3))
    for v in (v1, v2, v3):
        np.testing.assert_array_equal(v.numpy(), np.full(3, 0.5, np.float32))
