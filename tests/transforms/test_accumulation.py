"""Gradient accumulation (``transforms/accumulation.py``): the step on the mean
of every ``n`` gradients, nothing in between.

Keras 3's own accumulation is the reference in
``tests/oracle/test_keras3_accumulation.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_keras as jk


def test_accumulation_applies_the_mean_every_n_calls():
    """Independent check: SGD over the mean of 3 gradients == one SGD step on that mean."""
    t = jk.sgd(learning_rate=0.1, gradient_accumulation_steps=3)
    params = [jnp.zeros(2)]
    state = t.init(params)
    gs = [jnp.asarray([1.0, 2.0]), jnp.asarray([3.0, 5.0]), jnp.asarray([2.0, -1.0])]
    for i, g in enumerate(gs):
        u, state = t.update([g], state, params)
        params = jk.apply_updates(params, u)
        if i < 2:
            np.testing.assert_array_equal(np.asarray(params[0]), 0.0)
    mean = (np.float32([1, 2]) + np.float32([3, 5]) + np.float32([2, -1])) / np.float32(3)
    np.testing.assert_allclose(np.asarray(params[0]), -np.float32(0.1) * mean, rtol=1e-6)
    acc = [x for x in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, jk.transforms.AccumulationState))
           if isinstance(x, jk.transforms.AccumulationState)][0]
    np.testing.assert_array_equal(np.asarray(acc.accumulators[0]), 0.0)
    assert int(acc.iterations) == 3 and int(acc.inner.iterations) == 1
