"""Loss scaling as a transformation (``transforms/loss_scale.py``, public in
``jaxopt_keras.mixed_precision``): ``loss_scale_optimizer`` around any
transform, ``scale_loss``/``unscale_gradients``, skipped non-finite steps, and
Keras's dynamic rule (``helpers.keras_loss_scale_rule``).

The stateful ``LossScaleOptimizer`` is ``tests/optimizers/test_loss_scale_optimizer.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_keras as jk
from helpers import keras_loss_scale_rule
from jaxopt_keras.mixed_precision import LossScaleState, loss_scale_optimizer, scale_loss, unscale_gradients


def first(state, cls):
    """The first ``cls`` node of a state (found by type, not by position)."""
    for leaf in jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, cls)):
        if isinstance(leaf, cls):
            return leaf
    raise AssertionError(f"no {cls.__name__} in state")


def _first_optimizer_state(state):
    return first(state, jk.OptimizerState)


@pytest.mark.parametrize(
    "make_inner",
    [
        lambda: jk.chain(jk.clip_by_global_norm(1.0), jk.legacy.sgd(0.1, momentum=0.5)),
        lambda: jk.adam(0.05),
        lambda: optax.adam(0.05),
    ],
    ids=["jk-chain", "jk-adam", "optax-adam"],
)
def test_functional_loss_scaling_composes_with_any_transform(make_inner):
    inner = make_inner()
    tx = loss_scale_optimizer(inner, initial_scale=2.0**4, dynamic_growth_steps=3)
    params = {"w": jnp.asarray([1.0, -2.0, 0.5]), "b": jnp.asarray(0.25)}
    state = tx.init(params)
    assert isinstance(state, LossScaleState) and float(state.loss_scale) == 16.0

    def loss(p):
        return jnp.sum(p["w"] ** 2) + p["b"] ** 3

    # scale_loss / unscale_gradients: grads of the scaled loss, unscaled, are the grads.
    scaled = jax.grad(lambda p: scale_loss(loss(p), state))(params)
    plain = jax.grad(loss)(params)
    for k in params:
        np.testing.assert_array_equal(np.asarray(scaled[k]), 16 * np.asarray(plain[k]))
    unscaled = unscale_gradients(scaled, state)
    for k in params:
        np.testing.assert_array_equal(np.asarray(unscaled[k]), np.asarray(plain[k]))

    @jax.jit
    def step(params, state):
        grads = jax.grad(lambda p: scale_loss(loss(p), state))(params)
        grads = unscale_gradients(grads, state)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    ref_params, ref_state = params, inner.init(params)
    scale, counter = 16.0, 0
    bad_steps = {2, 3, 7}
    for k in range(12):
        if k in bad_steps:
            # An overflowing loss: poison a parameter so the gradients are not finite.
            poisoned = dict(params, b=jnp.asarray(np.inf if k != 3 else np.nan))
            before = jax.tree_util.tree_map(np.asarray, params)
            _, state = step(poisoned, state)
            finite = False
            # Keras counts a skipped step: our optimizers' step counters advance
            # (optax's own counters are not Keras's and stay put).
            ref_state = jax.tree_util.tree_map(
                lambda x: x._replace(iterations=x.iterations + 1) if isinstance(x, jk.OptimizerState) else x,
                ref_state,
                is_leaf=lambda x: isinstance(x, jk.OptimizerState),
            )
            for key in params:
                np.testing.assert_array_equal(np.asarray(params[key]), before[key])
        else:
            grads = jax.grad(loss)(ref_params)
            updates, ref_state = inner.update(grads, ref_state, ref_params)
            ref_params = optax.apply_updates(ref_params, updates)
            params, state = step(params, state)
            finite = True
            for key in params:
                np.testing.assert_allclose(np.asarray(params[key]), np.asarray(ref_params[key]), rtol=1e-6, atol=1e-7)
        scale, counter = keras_loss_scale_rule(scale, counter, finite, 3)
        assert float(state.loss_scale) == scale and int(state.counter) == counter, k
    assert scale != 16.0


def test_functional_skipped_steps_still_count():
    tx = loss_scale_optimizer(jk.adam(0.1), initial_scale=8.0)
    params = [jnp.ones(2)]
    state = tx.init(params)
    _, state = tx.update([jnp.asarray([np.inf, 1.0])], state, params)
    assert int(_first_optimizer_state(state.inner).iterations) == 1  # Keras counts skipped steps
    np.testing.assert_array_equal(np.asarray(_first_optimizer_state(state.inner).slots.m[0]), [0.0, 0.0])
    # Not dynamic: a fixed scale, and non-finite steps are applied (as Keras does).
    fixed = loss_scale_optimizer(jk.sgd(0.1), initial_scale=8.0, dynamic=False)
    s = fixed.init(params)
    u, s = fixed.update([jnp.asarray([np.inf, 1.0])], s, params)
    assert float(s.loss_scale) == 8.0 and not np.isfinite(np.asarray(u[0])[0])
    with pytest.raises(ValueError, match="initial_scale"):
        loss_scale_optimizer(jk.sgd(), initial_scale=0.0)
    with pytest.raises(ValueError, match="dynamic_growth_steps"):
        loss_scale_optimizer(jk.sgd(), dynamic_growth_steps=0)
