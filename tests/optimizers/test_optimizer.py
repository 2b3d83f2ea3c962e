"""The optimizer object (``optimizers/optimizer.py``) and training with it:
``apply_gradients`` (in place, iterations, None gradients, one compiled step,
donation), ``minimize``, ``build``, and the pure path through
``opt.transformation`` and ``opt.state``.

Expected values come from small NumPy re-derivations of Keras's formulas or
from a second run of the same optimizer; what TF-Keras itself does is checked
in ``tests/oracle/test_keras_layer_oracle.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from layer_helpers import FAMILIES, compiled_programs, grads_at, make_vars, values


X = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(4, 3)
Y = np.array([[0.5], [-0.25], [1.0], [0.0]], np.float32)


# ----------------------------------------------------------------------------
# apply_gradients: in place, iterations, None gradients, one compiled step, donation
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_apply_gradients_updates_in_place_and_counts(family):
    mod = FAMILIES[family]
    w, b = make_vars()
    w0, b0 = values([w, b])
    opt = mod.SGD(learning_rate=0.1)
    expected_w, expected_b = w0.astype(np.float64), b0.astype(np.float64)
    for k in range(3):
        g = grads_at(k)
        it = opt.apply_gradients(zip(g, [w, b]))  # any iterable of pairs
        assert int(it.numpy()) == k + 1 == int(opt.iterations.numpy())
        expected_w, expected_b = expected_w - 0.1 * g[0], expected_b - 0.1 * g[1]
    np.testing.assert_allclose(w.numpy(), expected_w, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b.numpy(), expected_b, rtol=1e-6, atol=1e-7)
    name = "SGD/iter:0" if family == "legacy" else "iteration:0"
    assert opt.iterations.name == name
    assert opt.iterations.numpy().dtype == jax.dtypes.canonicalize_dtype(np.int64)  # int32 unless x64
    # Nothing to do: OptimizerV2 returns `tf.no_op()` (None), the current family `iterations`.
    assert (opt.apply_gradients([]) is None) == (family == "legacy") and int(opt.iterations.numpy()) == 3


@pytest.mark.parametrize("family", FAMILIES)
def test_none_gradients_leave_the_variable_and_its_slots_alone(family):
    w, b = make_vars()
    opt = FAMILIES[family].Adam(learning_rate=0.1)
    opt.apply_gradients(list(zip(grads_at(0), [w, b])))
    b_before = b.numpy()
    slots_before = {s: opt.get_slot(b, s).numpy() for s in opt.get_slot_names()}
    w_before = w.numpy()
    opt.apply_gradients([(grads_at(1)[0], w), (None, b)])
    assert int(opt.iterations.numpy()) == 2
    np.testing.assert_array_equal(b.numpy(), b_before)
    for s, before in slots_before.items():
        np.testing.assert_array_equal(opt.get_slot(b, s).numpy(), before)
    assert not np.array_equal(w.numpy(), w_before)
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        opt.apply_gradients([(None, w), (None, b)])
    assert int(opt.iterations.numpy()) == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_one_compiled_step_reused_across_calls(family):
    mod = FAMILIES[family]
    w, b = make_vars()
    opt = mod.Adam(learning_rate=0.01)
    opt.apply_gradients(list(zip(grads_at(0), [w, b])))
    step = opt._step
    for k in range(1, 25):
        opt.apply_gradients(list(zip(grads_at(k), [w, b])))
    assert opt._step is step and compiled_programs(opt) == 1
    # Hyperparameters are state: changing them is not a recompilation.
    opt.learning_rate = 0.05
    opt.beta_1 = 0.8
    opt.apply_gradients(list(zip(grads_at(25), [w, b])))
    assert opt._step is step and compiled_programs(opt) == 1
    # A different pattern of None gradients is a different program ...
    opt.apply_gradients([(grads_at(26)[0], w), (None, b)])
    assert compiled_programs(opt) == 2
    # ... compiled once too, and the first is still there.
    opt.apply_gradients([(grads_at(27)[0], w), (None, b)])
    opt.apply_gradients(list(zip(grads_at(28), [w, b])))
    assert compiled_programs(opt) == 2
    # So is a different gradient dtype.
    opt.apply_gradients([(grads_at(29)[0].astype(jnp.bfloat16), w), (grads_at(29)[1], b)])
    assert compiled_programs(opt) == 3
    assert w.dtype == np.float32
    assert int(opt.iterations.numpy()) == 30


def test_legacy_new_variable_compiles_the_same_step_once_more():
    """The transformation is built once; a new variable adds one compiled structure."""
    w, b = make_vars()
    opt = O.legacy.Adam()
    transformation = opt.transformation
    opt.apply_gradients([(grads_at(0)[0], w)])
    step = opt._step
    opt.apply_gradients(list(zip(grads_at(1), [w, b])))
    assert opt._step is step and opt.transformation is transformation
    assert compiled_programs(opt) == 2
    for k in range(2, 6):
        opt.apply_gradients(list(zip(grads_at(k), [w, b])))
    assert compiled_programs(opt) == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_buffers_are_donated(family):
    w, b = make_vars()
    opt = FAMILIES[family].Adam()
    opt.apply_gradients(list(zip(grads_at(0), [w, b])))
    slot_read = opt.get_slot(w, "m").value
    opt.apply_gradients(list(zip(grads_at(1), [w, b])))
    # What the optimizer holds now (packed, in the pack-all variant).
    w_array, state_leaves = w.value, jax.tree_util.tree_leaves(opt._held)
    w_copy = w.numpy()
    g = [jnp.asarray(x) for x in grads_at(2)]
    opt.apply_gradients(list(zip(g, [w, b])))
    assert w_array.is_deleted()
    assert all(leaf.is_deleted() for leaf in state_leaves)
    # A view's value is a copy taken under the optimizer's lock: still valid
    # after the step, so another thread's step cannot delete what one reads.
    assert not slot_read.is_deleted()
    assert not any(x.is_deleted() for x in g)  # gradients are not donated
    assert not np.array_equal(w.numpy(), w_copy)  # the variable holds the new buffer


# ----------------------------------------------------------------------------
# minimize
# ----------------------------------------------------------------------------


def _loss_of_values(vals):
    return jnp.mean((X @ vals[0] + vals[1] - Y) ** 2)


@pytest.mark.parametrize("family", FAMILIES)
def test_minimize_matches_apply_gradients_with_jax_grad(family):
    cls = FAMILIES[family].Adam
    by_grad, by_vars, by_values = make_vars(), make_vars(), make_vars()
    o1, o2, o3 = cls(learning_rate=0.05), cls(learning_rate=0.05), cls(learning_rate=0.05)
    w, b = by_vars
    keras_style = lambda: jnp.mean((X @ w + b.value - Y) ** 2)  # noqa: E731 - reads the Variables
    for _ in range(4):
        expected_loss = _loss_of_values([v.value for v in by_grad])
        g = jax.grad(_loss_of_values)([v.value for v in by_grad])
        o1.apply_gradients(list(zip(g, by_grad)))
        loss2 = o2.minimize(keras_style, by_vars)
        loss3 = o3.minimize(_loss_of_values, by_values)
        assert float(loss2) == float(loss3) == float(expected_loss)
    for a, b_, c in zip(values(by_grad), values(by_vars), values(by_values)):
        np.testing.assert_array_equal(a, b_)
        np.testing.assert_array_equal(a, c)
    assert not isinstance(w.value, jax.core.Tracer)  # the variables hold arrays again
    assert int(o2.iterations.numpy()) == 4


def test_minimize_refuses_a_tensor_loss():
    with pytest.raises(ValueError, match="callable"):
        O.SGD().minimize(jnp.asarray(1.0), make_vars())


# ----------------------------------------------------------------------------
# build
# ----------------------------------------------------------------------------


def test_build_refuses_plain_arrays():
    with pytest.raises(TypeError, match="jaxopt_keras.Variable"):
        O.Adam().build([jnp.ones(3)])


# ----------------------------------------------------------------------------
# The pure path: opt.transformation and opt.state
# ----------------------------------------------------------------------------


def _numpy_current_adam(params, grads_seq, lr=0.05, b1=0.9, b2=0.999, eps=1e-7):
    """tf.keras.optimizers.Adam.update_step, in float64."""
    ps = [np.asarray(p, np.float64) for p in params]
    ms = [np.zeros_like(p) for p in ps]
    vs = [np.zeros_like(p) for p in ps]
    for t, grads in enumerate(grads_seq, start=1):
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        for i, g in enumerate(grads):
            ms[i] += (g - ms[i]) * (1 - b1)
            vs[i] += (np.square(g) - vs[i]) * (1 - b2)
            ps[i] -= ms[i] * alpha / (np.sqrt(vs[i]) + eps)
    return ps, ms, vs


def test_functional_loop_over_transformation_and_state():
    vs = make_vars()
    opt = O.Adam(learning_rate=0.05)
    opt.build(vs)
    start = values(vs)
    tx, state = opt.transformation, opt.state
    params = [v.value for v in vs]

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return jk.apply_updates(params, updates), state

    for k in range(3):
        params, state = step(params, state, [jnp.asarray(g) for g in grads_at(k)])
    opt.state = state
    for v, p in zip(vs, params):
        v.assign(p)

    want_p, want_m, want_v = _numpy_current_adam(start, [grads_at(k) for k in range(3)])
    weights = opt.get_weights()
    assert [w.name for w in opt.weights] == [
        "iteration:0",
        "m/dense/kernel:0",
        "v/dense/kernel:0",
        "m/dense/bias:0",
        "v/dense/bias:0",
    ]
    assert int(weights[0]) == 3 and int(opt.iterations.numpy()) == 3
    np.testing.assert_allclose(weights[1], want_m[0], rtol=1e-5)
    np.testing.assert_allclose(weights[2], want_v[0], rtol=1e-5)
    np.testing.assert_allclose(weights[3], want_m[1], rtol=1e-5)
    np.testing.assert_allclose(weights[4], want_v[1], rtol=1e-5)
    for v, p in zip(vs, want_p):
        np.testing.assert_allclose(v.numpy(), p, rtol=1e-5, atol=2e-6)  # each step moves ~0.05
    # The stateful object continues where the functional loop stopped.
    params, state = step(params, state, [jnp.asarray(g) for g in grads_at(3)])
    opt.apply_gradients(list(zip(grads_at(3), vs)))
    for v, p in zip(vs, params):
        np.testing.assert_array_equal(v.numpy(), np.asarray(p))


def test_setting_a_malformed_state_changes_nothing():
    vs = make_vars()
    opt = O.Adam()
    with pytest.raises(ValueError, match="structure"):  # before build, the state is over no variables
        opt.state = ()
    opt.apply_gradients(list(zip(grads_at(0), vs)))
    before = opt.get_weights()
    good = opt.state
    with pytest.raises(ValueError, match="structure"):
        opt.state = (good, None)
    with pytest.raises(ValueError, match="structure"):
        opt.state = jax.tree_util.tree_map(lambda x: x, good, is_leaf=lambda x: isinstance(x, list))[:-1] or ()
    wrong_shape = jax.tree_util.tree_map(lambda x: jnp.zeros((7,) + x.shape, x.dtype) if x.ndim == 2 else x, good)
    with pytest.raises(ValueError, match="shape"):
        opt.state = wrong_shape
    for a, b in zip(opt.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    opt.apply_gradients(list(zip(grads_at(1), vs)))  # still usable
    assert int(opt.iterations.numpy()) == 2


def test_state_setter_copies_so_shared_leaves_are_safe():
    vs = make_vars()
    opt = O.Adam()
    opt.apply_gradients(list(zip(grads_at(0), vs)))
    zeros = jnp.zeros((3, 1))
    shared = jax.tree_util.tree_map(lambda x: zeros if x.shape == (3, 1) else x, opt.state)
    opt.state = shared  # the same buffer for m and v: must not be donated twice
    opt.apply_gradients(list(zip(grads_at(1), vs)))
    assert not zeros.is_deleted()
