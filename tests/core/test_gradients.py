"""Gradients checked against their parameters (the issue's failure 6), in the
functional transformations (under ``jit``: shapes and dtypes are static) and
in the Keras layer (which also checks a sparse gradient's indices eagerly).

Before: a ``(1,)`` or scalar gradient for a matrix was broadcast silently, a
complex gradient lost its imaginary part, a wrong shape failed with
"TypeError: sub got incompatible shapes for broadcasting", and IndexedSlices
with out-of-range or negative indices, or a dense_shape unlike the
variable's, were accepted (a negative index updated the last row; a
too-small dense_shape dropped rows).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O

SHAPE = (3, 2)
BAD_DENSE = {
    "vector (1,)": np.ones((1,), np.float32),
    "scalar": np.float32(1.0),
    "transposed": np.ones((2, 3), np.float32),
    "row": np.ones((2,), np.float32),
}
BAD_SLICES = {
    "dense_shape too big": jk.IndexedSlices(jnp.ones((1, 2)), jnp.array([0]), (4, 2)),
    "dense_shape too small": jk.IndexedSlices(jnp.ones((1, 2)), jnp.array([0]), (2, 2)),
    "values of another width": jk.IndexedSlices(jnp.ones((1, 3)), jnp.array([0]), (3, 3)),
    "values unlike dense_shape": jk.IndexedSlices(jnp.ones((1, 3)), jnp.array([0]), SHAPE),
    "one index for two rows": jk.IndexedSlices(jnp.ones((2, 2)), jnp.array([0]), SHAPE),
    "2-D indices": jk.IndexedSlices(jnp.ones((1, 2)), jnp.array([[0]]), SHAPE),
}
FACTORIES = {"legacy": jk.legacy.adam, "current": jk.adam, "keras3": jk.keras3.adam}
SHAPE_ERROR = {"legacy": ValueError, "current": ValueError, "keras3": TypeError}


@pytest.mark.parametrize("family", FACTORIES)
@pytest.mark.parametrize("kind", list(BAD_DENSE) + list(BAD_SLICES))
def test_the_transformation_refuses_a_gradient_of_another_shape_under_jit(family, kind):
    tx = FACTORIES[family](0.1)
    params = {"dense": {"kernel": jnp.zeros(SHAPE)}}
    state = tx.init(params)
    g = BAD_DENSE.get(kind, BAD_SLICES.get(kind))
    with pytest.raises(SHAPE_ERROR[family], match="'dense/kernel'"):
        jax.jit(tx.update)({"dense": {"kernel": g}}, state, params)


@pytest.mark.parametrize("family", FACTORIES)
def test_a_complex_gradient_for_a_real_parameter(family):
    tx = FACTORIES[family](0.1)
    params = [jnp.zeros(SHAPE)]
    with pytest.raises(TypeError, match=r"'0'.*imaginary part"):
        tx.update([jnp.ones(SHAPE, jnp.complex64)], tx.init(params), params)


def test_with_gradient_accumulation_the_check_comes_before_the_sum():
    tx = jk.adam(0.1, gradient_accumulation_steps=2)
    params = {"w": jnp.zeros(SHAPE)}
    with pytest.raises(ValueError, match="'w' has shape \\(1,\\)"):
        tx.update({"w": jnp.ones((1,))}, tx.init(params), params)


@pytest.mark.parametrize("family", FACTORIES)
def test_out_of_range_and_negative_indices_are_padding_under_jit(family):
    """Our documented rule: an index outside [0, n) contributes nothing (a negative
    one used to update row n - 1).  Checked against the same gradient without
    those rows."""
    tx = FACTORIES[family](0.1)
    params = [jnp.arange(6.0).reshape(SHAPE)]
    state = tx.init(params)
    rows = jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    with_padding = jk.IndexedSlices(rows, jnp.array([1, -1, 3, 7]), SHAPE)
    only_valid = jk.IndexedSlices(rows[:1], jnp.array([1]), SHAPE)
    got, _ = jax.jit(tx.update)([with_padding], state, params)
    expected, _ = jax.jit(tx.update)([only_valid], state, params)
    np.testing.assert_array_equal(dense(got[0]), dense(expected[0]))
    assert float(jnp.abs(dense(got[0])[2]).sum()) == 0.0  # row 2 (n - 1) untouched by the -1


def dense(x):
    return x.to_dense() if isinstance(x, jk.IndexedSlices) else jnp.asarray(x)


def test_to_dense_drops_negative_indices():
    g = jk.IndexedSlices(jnp.ones((2, 2)), jnp.array([-1, 0]), SHAPE)
    np.testing.assert_array_equal(g.to_dense(), [[1, 1], [0, 0], [0, 0]])


CLASSES = {"legacy": O.legacy.Adam, "current": O.Adam, "keras3": O.keras3.Adam}


def layer_case(family):
    v = jk.Variable(np.ones(SHAPE, np.float32), name="dense/kernel")
    opt = CLASSES[family](0.1)
    opt.apply_gradients([(np.full(SHAPE, 0.5, np.float32), v)])  # built, one step taken
    return opt, v


def unchanged(opt, v):
    return [np.array(w) for w in opt.get_weights()] + [v.numpy()]


@pytest.mark.parametrize("family", CLASSES)
@pytest.mark.parametrize("kind", list(BAD_DENSE) + list(BAD_SLICES))
def test_the_layer_names_the_variable_and_changes_nothing(family, kind):
    opt, v = layer_case(family)
    before = unchanged(opt, v)
    g = BAD_DENSE.get(kind, BAD_SLICES.get(kind))
    with pytest.raises(SHAPE_ERROR[family], match="variable 'dense/kernel'"):
        opt.apply_gradients([(g, v)])
    for a, b in zip(before, unchanged(opt, v)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("family", CLASSES)
@pytest.mark.parametrize("index", [-1, 4, 100])
def test_the_layer_refuses_indices_out_of_range_eagerly(family, index):
    """As TensorFlow's kernels (``indices[0] = 5 is not in [0, 3)``); the padding
    index ``dense_shape[0]`` is accepted (our documented convention)."""
    opt, v = layer_case(family)
    before = unchanged(opt, v)
    with pytest.raises(ValueError, match=rf"variable 'dense/kernel'.*indices\[1\] = {index} is not in \[0, 3\)"):
        opt.apply_gradients([(jk.IndexedSlices(jnp.ones((2, 2)), jnp.array([0, index]), SHAPE), v)])
    for a, b in zip(before, unchanged(opt, v)):
        np.testing.assert_array_equal(a, b)
    opt.apply_gradients([(jk.IndexedSlices(jnp.ones((2, 2)), jnp.array([0, 3]), SHAPE), v)])


@pytest.mark.parametrize("family", CLASSES)
def test_the_layer_refuses_a_complex_gradient(family):
    opt, v = layer_case(family)
    with pytest.raises(TypeError, match="variable 'dense/kernel'.*imaginary"):
        opt.apply_gradients([(np.ones(SHAPE, np.complex64), v)])


@pytest.mark.parametrize("family", CLASSES)
def test_float16_and_integer_gradients_are_cast_as_keras3_casts_them(family):
    opt, v = layer_case(family)
    opt.apply_gradients([(np.ones(SHAPE, np.float16), v)])
    opt.apply_gradients([(np.ones(SHAPE, np.int32), v)])
    assert int(np.asarray(opt.iterations.value)) == 3


@pytest.mark.parametrize(
    "make,owner",
    [
        (jk.adam, "Adam"),
        (lambda: jk.ema(0.9), "EMA"),
        (lambda: jk.adam(gradient_accumulation_steps=2), "gradient accumulation"),
    ],
    ids=["optimizer", "ema", "accumulation"],
)
def test_gradients_of_another_tree_than_the_parameters_are_named(make, owner):
    b = [jnp.ones(1000) for _ in range(5)]  # numpy prints arrays of up to 1000 elements in full
    params = {"a": jnp.ones(3), "b": b}
    t = make()
    state = t.init(params)
    cases = [{"a": jnp.ones(3)}, [jnp.ones(3), b], {"a": jnp.ones(3), "b": b, "c": jnp.ones(1)}]
    for grads in cases:
        with pytest.raises(ValueError, match=rf"The gradients given to {owner}'s update and the parameters are trees of different structures") as e:
            t.update(grads, state, params)
        assert len(str(e.value)) < 600  # JAX's part, which may print every array, is cut
