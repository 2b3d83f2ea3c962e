"""Decoupled weight decay as a transformation (``transforms/weight_decay.py``).

The decay inside the Keras pipeline (before the step) is checked against
TF-Keras in ``tests/oracle/test_current_extras_oracle.py``; the object API's
exclusions in ``tests/optimizers/test_families.py``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk


def test_decay_mask_leaves_masked_parameters_alone():
    params = {"w": jnp.ones(3), "b": jnp.ones(3)}
    grads = {"w": jnp.zeros(3), "b": jnp.zeros(3)}
    t = jk.chain(jk.sgd(learning_rate=0.5), jk.decoupled_weight_decay(0.1, learning_rate=0.5, mask={"w": True, "b": False}))
    u, _ = t.update(grads, t.init(params), params)
    np.testing.assert_allclose(np.asarray(u["w"]), -np.float32(0.1) * np.float32(0.5), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(u["b"]), 0.0)


def test_a_mask_or_updates_of_another_tree_are_named():
    params = {"w": jnp.ones(3), "b": jnp.ones(2)}
    grads = {"w": jnp.zeros(3), "b": jnp.zeros(2)}
    masked = jk.decoupled_weight_decay(0.1, learning_rate=0.5, mask={"w": True})
    state = masked.init(params)
    with pytest.raises(ValueError, match=r"decoupled_weight_decay's mask and the parameters are trees of different structures"):
        masked.update(grads, state, params)
    # A callable mask is matched the same way, after it is called.
    by_call = jk.decoupled_weight_decay(0.1, learning_rate=0.5, mask=lambda p: [True, False])
    with pytest.raises(ValueError, match=r"decoupled_weight_decay's mask and the parameters"):
        by_call.update(grads, by_call.init(params), params)
    plain = jk.decoupled_weight_decay(0.1, learning_rate=0.5)
    with pytest.raises(ValueError, match=r"The gradients given to decoupled_weight_decay's update and the parameters"):
        plain.update({"w": grads["w"]}, plain.init(params), params)
    # A None update stays None; the others decay.
    u, _ = plain.update({"w": grads["w"], "b": None}, plain.init(params), params)
    assert u["b"] is None
    np.testing.assert_allclose(np.asarray(u["w"]), -np.float32(0.1) * np.float32(0.5), rtol=1e-6)
