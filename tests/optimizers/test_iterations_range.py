"""Step counts the counter cannot hold are refused, everywhere a count comes in
(the issue's failure 2).

Without x64 JAX has no int64, so the step counter is int32.  Stepping
saturates at ``2**31 - 1``; loading used to wrap (``set_weights([2**31])``
gave ``-2**31`` and ``2**32 + 7`` gave 7, and the next steps produced
non-finite parameters).  Our choice: refuse such a count with a ValueError
naming the range and how to count further (x64), and change nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from jaxopt_keras.core.state import checked_count

TOO_BIG = [np.int64(2**31), 2**32 + 7, np.int64(2**40)]
CLASSES = [O.legacy.Adam, O.Adam, O.Nadam, O.keras3.Adam, O.keras3.Nadam]


def built(cls, **kwargs):
    var = [jk.Variable(np.ones((3, 2), np.float32), name="dense/kernel")]
    opt = cls(**kwargs)
    opt.build(var)
    opt.apply_gradients(zip([np.full((3, 2), 0.5, np.float32)], var))
    return opt, var


def snapshot(opt):
    return [np.array(w) for w in opt.get_weights()], jax.tree_util.tree_map(np.array, opt.state)


def assert_unchanged(opt, before):
    weights, state = snapshot(opt)
    for a, b in zip(before[0], weights):
        np.testing.assert_array_equal(a, b)
    jax.tree_util.tree_map(np.testing.assert_array_equal, before[1], state)


@pytest.mark.parametrize("count", TOO_BIG, ids=str)
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}")
def test_set_weights_refuses_a_count_beyond_int32(cls, count):
    opt, _ = built(cls)
    before = snapshot(opt)
    weights = opt.get_weights()
    weights[0] = count
    with pytest.raises(ValueError, match=rf"`iterations` = {int(count)} is outside the range .*int32") as e:
        opt.set_weights(weights)
    # x64 widens TF-Keras's counters (int64 there); Keras 3's stays an int32 variable.
    assert ("enable x64" in str(e.value)) == (cls.__module__.rsplit(".", 1)[-1] != "keras3")
    assert_unchanged(opt, before)


def _refuses_the_attribute(cls, opt, count, error, message):
    """``opt.iterations = count``: Keras 3 has no setter; TF-Keras refuses it
    after the build (``test_layer_api_oracle``), and before it the count is
    checked as every other way in checks it."""
    keras3 = cls.__module__.rsplit(".", 1)[-1] == "keras3"
    with pytest.raises(AttributeError if keras3 else RuntimeError, match="no setter" if keras3 else "after the Optimizer weights"):
        opt.iterations = count
    if not keras3:
        fresh = cls()
        with pytest.raises(error, match=message):
            fresh.iterations = count
        assert int(fresh.iterations) == 0


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}")
def test_a_negative_or_fractional_count_is_refused(cls):
    """Keras takes ``iterations = -1``, and Adam's next step then divides by
    ``1 - beta**0 = 0``: NaN parameters.  Refused, by every way in."""
    opt, var = built(cls)
    before = snapshot(opt)
    for count in (-1, np.int64(-5), -(2**31) - 1, 2.5):
        message = "non-negative whole number"
        weights = opt.get_weights()
        weights[0] = count
        with pytest.raises(ValueError, match=message):
            opt.set_weights(weights)
        _refuses_the_attribute(cls, opt, count, ValueError, message)
        with pytest.raises(ValueError, match=f"{message}|outside the range|not a whole number"):
            opt.iterations.assign(count)
    assert_unchanged(opt, before)
    opt.apply_gradients(zip([np.full((3, 2), 0.5, np.float32)], var))
    assert np.all(np.isfinite(var[0].numpy()))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}")
def test_the_iterations_attribute_refuses_it_too(cls):
    opt, _ = built(cls)
    before = snapshot(opt)
    for count in TOO_BIG:
        _refuses_the_attribute(cls, opt, count, ValueError, "outside the range")
        with pytest.raises(ValueError, match="outside the range"):
            opt.iterations.assign(count)
    assert_unchanged(opt, before)


def test_the_state_setter_refuses_it_too():
    opt, _ = built(O.Adam)
    before = snapshot(opt)
    state = jax.tree_util.tree_map(lambda x: np.asarray(x, np.int64) + 2**31 if np.ndim(x) == 0 and np.issubdtype(x.dtype, np.integer) else x, opt.state)
    with pytest.raises(ValueError, match="step counter"):
        opt.state = state
    assert_unchanged(opt, before)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}")
def test_the_counter_maximum_loads_and_the_next_steps_stay_finite(cls):
    opt, var = built(cls)
    weights = opt.get_weights()
    weights[0] = np.int64(2**31 - 1)
    opt.set_weights(weights)
    assert int(opt.iterations.numpy()) == 2**31 - 1
    for _ in range(3):
        opt.apply_gradients(zip([np.full((3, 2), 0.5, np.float32)], var))
    assert int(opt.iterations.numpy()) == 2**31 - 1  # saturates, as stepping always did
    assert np.all(np.isfinite(var[0].numpy()))


def test_keras3_stateless_apply_refuses_it_eagerly():
    opt, var = built(O.keras3.Adam)
    values = [np.array(v) for v in opt.variables]
    values[0] = np.int64(2**31)
    with pytest.raises(ValueError, match="outside the range"):
        opt.stateless_apply(values, [np.ones((3, 2), np.float32)], [var[0].value])


def test_gradient_accumulation_checks_the_call_count():
    opt, _ = built(O.Adam, gradient_accumulation_steps=2)
    weights = opt.get_weights()
    weights[0] = np.int64(2**31)
    with pytest.raises(ValueError, match="outside the range"):
        opt.set_weights(weights)


def test_with_x64_the_same_counts_load_exactly():
    with jax.enable_x64(True):
        opt, var = built(O.Adam)
        weights = opt.get_weights()
        weights[0] = np.int64(2**32 + 7)
        opt.set_weights(weights)
        assert int(opt.get_weights()[0]) == 2**32 + 7
        opt.apply_gradients(zip([np.full((3, 2), 0.5, np.float32)], var))
        assert int(opt.get_weights()[0]) == 2**32 + 8
        assert np.all(np.isfinite(var[0].numpy()))


def test_checked_count():
    assert checked_count(np.int64(5), np.int32) == 5
    assert checked_count(7.0, np.int32) == 7
    for bad in (3.5, float("nan"), np.ones(2), "3", -1):
        with pytest.raises(ValueError):
            checked_count(bad, np.int32)
    traced = jax.jit(lambda x: checked_count(x, jnp.int32))(jnp.int32(3))  # data cannot raise under jit
    assert int(traced) == 3


@pytest.mark.parametrize("cls", [O.keras3.Adam, O.keras3.Nadam], ids=lambda c: c.__name__)
def test_keras3_counts_in_int32_under_x64_too(cls):
    """Keras 3's ``iteration`` is an int32 variable under x64 too (``keras3_probes.py``):
    ours shows it so, refuses a count beyond it by every way in (without the x64 hint,
    which would not help), and never shows a wrapped count."""
    with jax.enable_x64(True):
        opt, _ = built(cls)
        assert opt.iterations.dtype == jnp.int32 and opt.get_weights()[0].dtype == np.int32
        before = snapshot(opt)
        for count in TOO_BIG:
            weights = opt.get_weights()
            weights[0] = count
            for attempt in (lambda: opt.set_weights(weights), lambda: opt.iterations.assign(count)):  # no setter: above
                with pytest.raises(ValueError, match="outside the range") as e:
                    attempt()
                assert "x64" not in str(e.value)
        assert_unchanged(opt, before)
        # The state counts in int64 under x64; a count beyond int32 put there shows saturated, not wrapped.
        opt.state = jax.tree_util.tree_map(lambda x: x + 2**31 if np.ndim(x) == 0 and x.dtype == jnp.int64 else x, opt.state)
        assert int(opt.iterations.numpy()) == 2**31 - 1
