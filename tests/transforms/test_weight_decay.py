"""Decoupled weight decay as a transformation (``transforms/weight_decay.py``).

The decay inside the Keras pipeline (before the step) is checked against
TF-Keras in ``tests/oracle/test_current_extras_oracle.py``; the object API's
exclusions in ``tests/optimizers/test_families.py``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jaxopt_keras as jk


def test_decay_mask_leaves_masked_parameters_alone():
    params = {"w": jnp.ones(3), "b": jnp.ones(3)}
    grads = {"w": jnp.zeros(3), "b": jnp.zeros(3)}
    t = jk.chain(jk.sgd(learning_rate=0.5), jk.decoupled_weight_decay(0.1, learning_rate=0.5, mask={"w": True, "b": False}))
    u, _ = t.update(grads, t.init(params), params)
    np.testing.assert_allclose(np.asarray(u["w"]), -np.float32(0.1) * np.float32(0.5), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(u["b"]), 0.0)
